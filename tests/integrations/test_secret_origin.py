"""A stored secret goes only to the route (origin and proxy) it was entered for.

Each of the audit's five exfiltration routes is tried against a second listener on
127.0.0.1 (another port is another origin): the secret never arrives there, and the
person is told to type it again.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from django.urls import reverse

from integrations import services
from integrations.llm import client, inputs, preview
from integrations.models import AuthKind, AuthProfile, Integration, StoredSecret
from tests.conftest import CANARY, CANARY_HEADER
from tests.integrations.test_api import Api
from tests.integrations.test_connection_views import HX, add_payload
from tests.upstream import Upstream, openai_reply, reply_json


@pytest.fixture
def listener():
    """Somewhere an Editor would like the stored key to go."""
    server = Upstream().start()
    server.handler = reply_json(openai_reply("got it"))
    yield server
    server.stop()


def assert_never_arrived(listener) -> None:
    for rec in listener.requests:
        seen = str(rec.headers) + rec.path + rec.body.decode(errors="replace")
        assert CANARY not in seen and CANARY_HEADER not in seen


def edit_payload(model, **overrides) -> dict:
    integration = model.integration
    data = {
        "integration_name": integration.name,
        "description": "",
        "preset": "",
        "endpoint": integration.endpoint,
        "protocol": integration.protocol,
        "timeout_seconds": "5",
        "verify_tls": "on",
        "auth_profile": str(integration.auth_profile_id or ""),
        "test_model": str(model.pk),
        "headers-TOTAL_FORMS": "0",
        "headers-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_the_client_refuses_a_stored_secret_for_another_route(make_integration, listener):
    model = make_integration()
    config = services.config_for(model.integration, model)
    moved = replace(config, endpoint=f"{listener.url}/v1", headers=())
    result = client.call(moved, services.test_prompt(None))
    assert result.error.kind == "secret_origin"
    assert "Type it again" in result.error.message
    assert listener.requests == []
    # A secret header alone is bound as well.
    no_auth = replace(config, endpoint=f"{listener.url}/v1", auth=replace(config.auth, kind="none"))
    no_auth = replace(no_auth, auth=no_auth.auth.effective())
    assert client.call(no_auth, services.test_prompt(None)).error.kind == "secret_origin"
    assert listener.requests == []


def test_the_client_refuses_a_proxy_the_secret_was_not_entered_with(make_integration, listener):
    model = make_integration(secret_header=None)
    config = services.config_for(model.integration, model)
    result = client.call(replace(config, proxy_url=listener.url), services.test_prompt(None))
    assert result.error.kind == "secret_origin" and listener.requests == []


def test_route_1_the_add_form_with_an_existing_profile_and_another_host(
    client, bob, make_integration, listener
):
    model = make_integration()
    profile = model.integration.auth_profile
    client.force_login(bob)
    data = add_payload(
        listener,
        integration_name="Elsewhere",
        auth_profile=str(profile.pk),
        **{"headers-TOTAL_FORMS": "0"},
    )
    response = client.post(reverse("integration-add"), {**data, "action": "test"}, headers=HX)
    html = response.content.decode()
    assert "type it again to send it to" in html and "auth_reentry" in html
    assert_never_arrived(listener)
    assert listener.requests == []
    # Typing the secret again is what it takes; then it goes, and is bound there on Save.
    data["auth_reentry"] = CANARY
    response = client.post(reverse("integration-add"), {**data, "action": "test"}, headers=HX)
    assert len(listener.requests) == 1


def test_route_2_the_edit_form_attaching_another_integrations_profile(
    client, bob, make_integration, listener
):
    victim = make_integration(name="Victim")
    mine = make_integration(name="Mine", auth_kind=AuthKind.NONE, secret_header=None)
    Integration.objects.filter(pk=mine.integration.pk).update(endpoint=f"{listener.url}/v1")
    mine.integration.refresh_from_db()
    client.force_login(bob)
    url = reverse("integration-edit", args=[mine.integration.pk])
    data = edit_payload(mine, auth_profile=str(victim.integration.auth_profile_id))
    response = client.post(url, {**data, "action": "test"}, headers=HX)
    assert "type it again" in response.content.decode()
    assert listener.requests == []


def test_route_2_the_edit_form_adding_a_proxy(client, bob, make_integration, listener):
    model = make_integration(secret_header=None)
    client.force_login(bob)
    url = reverse("integration-edit", args=[model.integration.pk])
    data = edit_payload(model, proxy_url=listener.url)
    response = client.post(url, {**data, "action": "test"}, headers=HX)
    assert "type it again" in response.content.decode()
    assert listener.requests == []


def test_route_3_api_patch_of_uri(client, bob, api_token, make_integration, listener):
    model = make_integration(secret_header=None)
    api = Api(client, api_token(bob))
    status, body = api.call("patch", f"llms/{model.pk}", {"uri": f"{listener.url}/v1"})
    assert status == 400 and body["error"]["kind"] == "secret_origin"
    assert listener.requests == []
    assert Integration.objects.get(pk=model.integration.pk).endpoint == model.integration.endpoint


def test_route_3_api_patch_with_the_key_typed_again_moves_it(
    client, bob, api_token, make_integration, listener
):
    model = make_integration(secret_header=None)
    api = Api(client, api_token(bob))
    status, _ = api.call(
        "patch",
        f"llms/{model.pk}",
        {"uri": f"{listener.url}/v1", "auth": {"type": "bearer", "token": CANARY}},
    )
    assert status == 200 and len(listener.requests) == 1


def test_route_4_api_create_with_someone_elses_stored_secret(
    client, alice, bob, api_token, upstream, listener
):
    upstream.handler = reply_json(openai_reply())
    admin_api = Api(client, api_token(alice))
    status, stored = admin_api.call(
        "post",
        "secrets",
        {"secret_name": "openai", "secret_value": CANARY, "origins": [f"{upstream.url}/v1"]},
    )
    assert status == 201
    editor_api = Api(client, api_token(bob))
    payload = {
        "type": "openai-compatible",
        "name": "Exfil",
        "model": "m",
        "uri": f"{listener.url}/v1",
        "auth": {"type": "bearer", "secret_id": stored["secret_id"]},
    }
    status, body = editor_api.call("post", "llms", payload)
    assert status == 400 and body["error"]["kind"] == "secret_origin"
    assert listener.requests == []
    assert not Integration.objects.filter(name="Exfil").exists()
    # The origin it was stored for works.
    payload.update(name="Fine", uri=f"{upstream.url}/v1")
    assert editor_api.call("post", "llms", payload)[0] == 201


def test_a_stored_secret_without_origins_is_bound_by_its_owners_first_use(
    client, bob, charlie, alice, api_token, upstream, listener
):
    upstream.handler = reply_json(openai_reply())
    bob_api = Api(client, api_token(bob))
    _, stored = bob_api.call("post", "secrets", {"secret_name": "k", "secret_value": CANARY})
    payload = {
        "type": "openai-compatible",
        "name": "First",
        "model": "m",
        "uri": f"{upstream.url}/v1",
        "auth": {"type": "bearer", "secret_id": stored["secret_id"]},
    }
    assert bob_api.call("post", "llms", payload)[0] == 201
    assert StoredSecret.objects.get().bound_origins == [inputs.route(upstream.url)]
    # Now bound: not even its owner can send it elsewhere without typing it.
    payload.update(name="Second", uri=f"{listener.url}/v1")
    assert bob_api.call("post", "llms", payload)[1]["error"]["kind"] == "secret_origin"
    assert listener.requests == []


def test_route_5_profile_edit_moving_the_oauth_token_url(client, bob, upstream, listener, db):
    profile = AuthProfile.objects.create(
        name="OAuth",
        kind=AuthKind.OAUTH2,
        token_url=f"{upstream.url}/token",
        client_id="console",
        client_secret=CANARY,
        bound_origins=[inputs.route(upstream.url)],
    )
    Integration.objects.create(name="Uses it", endpoint=f"{upstream.url}/v1", auth_profile=profile)
    client.force_login(bob)
    response = client.post(
        reverse("auth-profile-edit", args=[profile.pk]),
        {
            "name": "OAuth",
            "kind": "oauth2",
            "token_url": f"{listener.url}/token",
            "client_id": "console",
            "scope": "",
        },
    )
    assert "type the client secret again" in response.content.decode()
    assert listener.requests == []
    profile.refresh_from_db()
    assert profile.token_url == f"{upstream.url}/token"


def test_the_client_refuses_an_oauth_token_url_the_secret_was_not_entered_for(upstream, listener):
    from integrations.llm.config import AuthConfig, LLMConfig

    auth = AuthConfig(
        kind="oauth2",
        token_url=f"{listener.url}/token",
        client_id="c",
        client_secret=CANARY,
        bound=frozenset({inputs.route(upstream.url)}),
    )
    config = LLMConfig(endpoint=f"{upstream.url}/v1", model_id="m", auth=auth, timeout=3)
    result = client.call(config, services.test_prompt(None))
    assert result.error.kind == "secret_origin"
    assert listener.requests == [] and upstream.requests == []


def test_the_curl_preview_hides_a_query_key_that_url_encoding_changes(upstream):
    from integrations.llm.config import AuthConfig, LLMConfig
    from tests.conftest import typed

    key = "qk+/=abc123XYZ987/+=zz"
    config = typed(
        LLMConfig(
            endpoint=f"{upstream.url}/v1",
            model_id="m",
            auth=AuthConfig(kind="query", query_param="key", token=key),
        )
    )
    curl = preview.curl_command(config, services.test_prompt(None))
    assert "${API_KEY}" in curl
    for form in (key, "qk%2B%2F%3Dabc123XYZ987", "abc123XYZ987"):
        assert form not in curl
