"""Generated input: no form or API operation answers a 500, whatever it is sent.

Bounded so the suite stays fast: schemathesis makes a few dozen cases per REST
operation from the OpenAPI schema, hypothesis a few dozen form posts. Host names
that are not IP literals fail to resolve at once here, so no case waits on DNS.
"""

from __future__ import annotations

import os
import socket

import pytest
import schemathesis
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.api import api
from config.wsgi import application
from integrations.gateway import keys
from integrations.gateway import openapi as gateway_openapi
from integrations.models import AuthProfile, Integration
from tests.integrations.test_connection_views import HX, add_payload

FUZZ = settings(
    # A seed-fixed, bounded run in the suite; FUZZ_EXAMPLES=1000 for a deeper one by hand.
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 25)),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
# Text a browser can post: any character but lone surrogates, which no form encoding carries.
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=80)
NASTY = st.sampled_from(
    [
        "",
        "http://[::1",
        "http://xn--a.invalid/v1",
        "http://127.0.0.1:0/v1",
        "https://ex ample.com",
        "ftp://x",
        "sk-tökén",
        "Content-Length",
        "Host",
        "a\nb",
        "\x00",
        "9" * 20,
        "2147483648",
        '{"a": ' * 900 + "1" + "}" * 900,
        '{"a": "\\ud800"}',
        '{"a": "\\u0000"}',
        "{{nope}}",
    ]
)


@pytest.fixture
def no_dns(monkeypatch):
    real = socket.getaddrinfo

    def only_literals(host, *args, **kwargs):
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in str(host) else socket.AF_INET, str(host))
        except (OSError, ValueError, TypeError) as exc:
            raise socket.gaierror(socket.EAI_NONAME, "no DNS in tests") from exc
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", only_literals)


SCHEMA = schemathesis.openapi.from_dict(api.get_openapi_schema())
SCHEMA.app = application


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "operation",
    [op.ok() for op in SCHEMA.get_all_operations()],
    ids=lambda op: op.label,
)
def test_no_api_operation_answers_500(operation, bob, api_token, no_dns, settings):
    settings.ALLOWED_HOSTS = ["*"]
    token = api_token(bob)

    @FUZZ
    @given(case=operation.as_strategy())
    def run(case):
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        assert response.status_code < 500, (case.method, case.path, response.text[:500])

    run()


GATEWAY = schemathesis.openapi.from_dict(gateway_openapi.SCHEMA)
GATEWAY.app = application


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "operation",
    [op.ok() for op in GATEWAY.get_all_operations()],
    ids=lambda op: op.label,
)
def test_no_gateway_operation_answers_500(operation, bob, make_integration, upstream, settings):
    """Generated bodies against a real model on a local upstream: every answer is the
    door's own (an OpenAI-shaped error, or a completion), never a 500."""
    settings.ALLOWED_HOSTS = ["*"]
    make_integration(secret_header=None)
    _, raw = keys.create(bob, "fuzz")

    @FUZZ
    @given(case=operation.as_strategy())
    def run(case):
        response = case.call(headers={"Authorization": f"Bearer {raw}"})
        assert response.status_code < 500, (case.method, case.path, response.text[:500])
        if response.status_code >= 400:
            assert "error" in response.json(), response.text[:300]

    run()


@pytest.mark.django_db
@FUZZ
@given(
    field=st.sampled_from(
        [
            "endpoint",
            "proxy_url",
            "integration_name",
            "description",
            "model_id",
            "max_tokens",
            "request_template",
            "headers-0-name",
            "headers-0-value",
            "new_auth_token",
            "new_auth_header_name",
            "new_auth_kind",
            "timeout_seconds",
            "test_max_tokens",
            "price_input_per_mtok",
        ]
    ),
    value=st.one_of(TEXT, NASTY),
)
def test_the_add_form_never_answers_500(field, value, bob, upstream, no_dns):
    client = Client()
    client.force_login(bob)
    data = add_payload(upstream, **{"new_auth_kind": "header", "new_auth_header_name": "x-key"})
    data[field] = value
    for action in ("preview", "save"):
        response = client.post(reverse("integration-add"), {**data, "action": action}, headers=HX)
        assert response.status_code < 500


@pytest.mark.django_db
@FUZZ
@given(
    payload=st.fixed_dictionaries(
        {},
        optional={
            "uri": st.one_of(TEXT, NASTY),
            "model": st.one_of(TEXT, NASTY),
            "name": st.one_of(TEXT, NASTY),
            "description": TEXT,
            "enabled": st.booleans(),
            "auth": st.one_of(
                st.none(),
                st.fixed_dictionaries({"type": st.just("bearer"), "token": st.one_of(TEXT, NASTY)}),
                st.fixed_dictionaries(
                    {"type": st.just("header"), "header": NASTY, "value": st.one_of(TEXT, NASTY)}
                ),
            ),
            "test_model_parameters": st.dictionaries(TEXT, st.one_of(st.integers(), TEXT)),
        },
    )
)
def test_creating_or_patching_an_llm_never_answers_500(
    payload, bob, api_token, make_integration, upstream, no_dns
):
    from tests.integrations.test_api import Api

    api = Api(Client(), api_token(bob))
    model = make_integration(name="Fuzzed", secret_header=None)
    status, _ = api.call("patch", f"llms/{model.pk}", payload)
    assert status < 500
    valid = {"type": "openai-compatible", "name": "New", "model": "m", "uri": upstream.url}
    status, _ = api.call("post", "llms", valid | {k: v for k, v in payload.items() if v})
    assert status < 500
    Integration.objects.all().delete()
    AuthProfile.objects.all().delete()
