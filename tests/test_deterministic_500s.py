"""Each deterministic 500 the round-3 audit found is a 4xx with a message naming the field.

Schemathesis (39,705 cases) and 676 hand-made gateway bodies found them: a NUL or a lone
surrogate in the gateway's `model`; `?q=<NUL>` and `offset=2**63` on GET /api/v2/llms;
`base_url=""` on llm_configurations; a non-ASCII `ca_bundle`; renaming an integration or
an auth profile to a name that exists (also with a trailing space); and bodies of
2.5-4 MiB on /v1, which Django's upload limit answered with an HTML 400.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.sites import site
from django.test import Client
from django.urls import reverse

from integrations.gateway import keys
from integrations.models import AuthProfile, Integration
from tests.integrations.test_api import Api

pytestmark = pytest.mark.django_db

NOT_PEM = "-----BEGIN CERTIFICATE-----\nMIIé\n-----END CERTIFICATE-----"


@pytest.fixture
def api(client, bob, api_token):
    return Api(client, api_token(bob))


def gateway_post(raw: str, body: bytes) -> tuple[int, dict]:
    client = Client(headers={"Authorization": f"Bearer {raw}"})
    response = client.post("/v1/chat/completions", body, content_type="application/json")
    return response.status_code, response.json()


@pytest.mark.parametrize("name", ["Model\x00A", "\\ud800"])
def test_a_nul_or_lone_surrogate_in_model_is_a_400(name, make_integration, bob):
    make_integration()
    _, raw = keys.create(bob, "app")
    body = '{"model": "NAME", "messages": [{"role": "user", "content": "hi"}]}'.replace(
        "NAME", name
    )
    status, answer = gateway_post(raw, body.replace("\x00", "\\u0000").encode())
    assert status == 400 and answer["error"]["param"] == "model"


def test_gateway_bodies_up_to_its_own_limit_are_read_and_larger_ones_are_413(
    make_integration, bob, upstream
):
    make_integration()
    _, raw = keys.create(bob, "app")
    content = "x" * (3 * 1024 * 1024)  # over Django's 2.5 MiB, under the gateway's 4 MiB
    body = {"model": "Model A", "messages": [{"role": "user", "content": content}]}
    status, answer = gateway_post(raw, json.dumps(body).encode())
    assert status == 200, answer
    assert len(upstream.requests[-1].body) > 3 * 1024 * 1024
    body["messages"][0]["content"] = "x" * (5 * 1024 * 1024)
    status, answer = gateway_post(raw, json.dumps(body).encode())
    assert status == 413 and answer["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("query, field", [("q=%00", "q"), ("offset=9223372036854775808", "offset")])
def test_llm_list_parameters_are_checked(query, field, client, bob, api_token):
    response = client.get(
        f"/api/v2/llms?{query}", headers={"Authorization": f"Bearer {api_token(bob)}"}
    )
    assert response.status_code == 422 and field in response.json()["message"]


def test_an_empty_base_url_is_a_422(api):
    status, body = api.call(
        "post",
        "llm_configurations",
        {"display_name": "X", "model_name": "m", "secret_id": "0" * 32, "base_url": ""},
    )
    assert status == 422 and "base_url" in body["message"]


def test_a_non_ascii_ca_bundle_is_refused_next_to_the_field(api, client, bob, upstream):
    payload = {
        "name": "TLS",
        "endpoint": f"{upstream.url}/v1",
        "ca_bundle": NOT_PEM,
        "models": [{"name": "m", "model_id": "m"}],
    }
    status, body = api.call("post", "integrations", payload)
    assert status == 422 and "ca_bundle" in body["message"]
    from tests.integrations.test_connection_views import HX, add_payload

    client.force_login(bob)
    data = add_payload(upstream, ca_bundle=NOT_PEM, action="test")
    html = client.post(reverse("integration-add"), data, headers=HX).content.decode()
    assert "Paste PEM certificates" in html


@pytest.mark.parametrize("spelled", ["Taken", "taken ", " TAKEN"])
def test_renaming_to_a_name_that_exists_is_a_conflict(
    spelled, api, make_integration, client, bob, alice
):
    make_integration(name="Taken")
    other = make_integration(name="Other", secret_header=None)
    status, body = api.call("patch", f"integrations/{other.integration.pk}", {"name": spelled})
    assert status == 409 and "exists already" in body["message"]
    status, body = api.call("post", "auth-profiles", {"name": "taken key ", "type": "none"})
    assert status == 409 and "exists already" in body["message"]
    client.force_login(bob)
    profile = other.integration.auth_profile
    response = client.post(
        reverse("auth-profile-edit", args=[profile.pk]),
        {"name": "TAKEN KEY", "kind": "bearer"},
    )
    assert response.status_code == 200 and "exists already" in response.content.decode()
    # The Django admin's rename goes through the same rule, next to the field.
    client.force_login(alice)
    url = reverse("admin:integrations_integration_change", args=[other.integration.pk])
    response = client.post(url, {"name": spelled, "description": "", "enabled": "on"})
    assert response.status_code == 200 and "exists already" in response.content.decode()
    assert Integration.objects.get(pk=other.integration.pk).name == "Other"
    assert AuthProfile.objects.filter(name__iexact="taken key").count() == 1
    assert site.is_registered(Integration)
