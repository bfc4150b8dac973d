"""/api/v2/integrations over the whole model, LiveAvatar's shape, and JSON errors."""

from __future__ import annotations

import base64
import json

import pytest

from integrations.llm.protocols import ADAPTERS
from integrations.models import (
    AuthProfile,
    ConnectionTest,
    CustomModel,
    Integration,
    StoredSecret,
)
from tests.conftest import CANARY
from tests.integrations.test_api import Api
from tests.upstream import openai_reply, send


def answer(h, status: int, data) -> None:
    send(h, status, json.dumps(data).encode(), "application/json")


ANTHROPIC = {
    "content": [{"type": "text", "text": "pong"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 5, "output_tokens": 1},
}


def polyglot(rec, h):
    """Answer as whatever the request asked for: a token, Anthropic, or OpenAI."""
    if rec.path.endswith("/token"):
        return answer(h, 200, {"access_token": "at-0123456789", "expires_in": 3600})
    path = rec.path.split("?")[0]
    if path.endswith("/messages"):
        return answer(h, 200, ANTHROPIC)
    if path.endswith("/v1/completions"):
        return answer(h, 200, {"choices": [{"text": "pong", "finish_reason": "stop"}]})
    if path.endswith("/v1/embeddings"):
        vector = {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}
        return answer(h, 200, {"data": [vector], "usage": {"prompt_tokens": 1, "total_tokens": 1}})
    return answer(h, 200, openai_reply())


AUTHS = {
    "none": {"type": "none"},
    "bearer": {"type": "bearer", "token": CANARY},
    "header": {"type": "header", "header": "x-api-key", "token": CANARY},
    "query": {"type": "query", "query_param": "key", "token": CANARY},
    "body": {"type": "body", "body_path": "auth.token", "token": CANARY},
    "basic": {"type": "basic", "username": "u", "password": CANARY},
    "oauth2": {"type": "oauth2", "client_id": "c", "client_secret": CANARY},
}


@pytest.fixture
def editor_api(client, bob, api_token):
    return Api(client, api_token(bob))


def carried(rec, kind: str) -> bool:
    body = rec.body.decode()
    headers = {k.lower(): v for k, v in rec.headers.items()}
    return {
        "none": "authorization" not in headers,
        "bearer": headers.get("authorization") == f"Bearer {CANARY}",
        "header": headers.get("x-api-key") == CANARY,
        "query": f"key={CANARY}" in rec.path,
        "body": CANARY in body,
        "basic": headers.get("authorization")
        == "Basic " + base64.b64encode(f"u:{CANARY}".encode()).decode(),
        "oauth2": headers.get("authorization") == "Bearer at-0123456789",
    }[kind]


@pytest.mark.parametrize("protocol", list(ADAPTERS))
@pytest.mark.parametrize("kind", list(AUTHS))
def test_the_api_creates_every_protocol_with_every_auth_kind(editor_api, upstream, protocol, kind):
    upstream.handler = polyglot
    auth = dict(AUTHS[kind])
    if kind == "oauth2":
        auth["token_url"] = f"{upstream.url}/token"
    payload = {
        "name": f"{protocol} {kind}",
        "endpoint": f"{upstream.url}/v1",
        "protocol": protocol,
        "deployment": "dep-1" if protocol == "azure-openai" else "",
        "auth": auth,
        "headers": [{"name": "X-Team", "value": "research"}],
        "timeout_seconds": 7,
        "models": [{"name": "M", "model_id": "m-1", "price_input_per_mtok": "1.5"}],
    }
    if protocol == "custom":
        payload["request_template"] = {"model": "{{model}}", "messages": "{{messages}}"}
    if protocol == "openai-embeddings":  # an endpoint that serves embeddings models only
        payload["models"][0]["kind"] = "embeddings"
    status, body = editor_api.call("post", "integrations", payload)
    assert status == 201, body
    sent = [r for r in upstream.requests if not r.path.endswith("/token")][-1]
    assert carried(sent, kind), (sent.path, sent.headers)
    assert sent.headers["X-Team"] == "research"
    assert body["auth"]["type"] == kind and body["timeout_seconds"] == 7
    assert body["models"][0]["status"] == "passing" and body["models"][0]["enabled"]
    assert CustomModel.objects.get(integration__name=payload["name"]).price_input_per_mtok == 1.5


def test_a_second_model_joins_an_existing_integration(editor_api, upstream):
    payload = {
        "name": "Shared",
        "endpoint": f"{upstream.url}/v1",
        "auth": AUTHS["bearer"],
        "models": [{"name": "A", "model_id": "a"}],
    }
    status, body = editor_api.call("post", "integrations", payload)
    assert status == 201
    status, model = editor_api.call(
        "post", f"integrations/{body['id']}/models", {"name": "B", "model_id": "b"}
    )
    assert status == 201 and model["enabled"]
    assert Integration.objects.get().models.count() == 2
    assert upstream.requests[-1].json()["model"] == "b"
    # Its credentials stayed bound where they were typed: the second model needed no key.
    assert AuthProfile.objects.count() == 1


def test_a_change_that_would_break_another_model_is_refused_with_the_list(editor_api, upstream):
    status, body = editor_api.call(
        "post",
        "integrations",
        {
            "name": "Two",
            "endpoint": f"{upstream.url}/v1",
            "auth": AUTHS["bearer"],
            "models": [{"name": "A", "model_id": "a"}, {"name": "B", "model_id": "b"}],
        },
    )
    assert status == 201

    def only_a(rec, h):
        if rec.json().get("model") == "a":
            return answer(h, 200, openai_reply())
        return answer(h, 404, {"error": {"message": "model b not found"}})

    upstream.handler = only_a
    a = CustomModel.objects.get(name="A")
    status, reply = editor_api.call(
        "patch",
        f"integrations/{body['id']}",
        {"timeout_seconds": 9, "test_model_id": str(a.pk)},
    )
    assert status == 409, reply
    assert [f["name"] for f in reply["failing"]] == ["Two / B"]
    assert reply["failing"][0]["error"]["kind"] == "unknown_model"
    assert Integration.objects.get().timeout_seconds == 60  # nothing changed


def test_an_existing_profile_can_be_attached_by_id_where_it_is_bound(
    editor_api, make_integration, upstream, listener_url
):
    model = make_integration(secret_header=None)
    profile_id = str(model.integration.auth_profile_id)
    payload = {
        "name": "Reuse",
        "endpoint": f"{upstream.url}/v1",
        "auth": {"profile_id": profile_id},
        "models": [{"name": "M", "model_id": "m"}],
    }
    assert editor_api.call("post", "integrations", payload)[0] == 201
    payload.update(name="Elsewhere", endpoint=listener_url)
    status, body = editor_api.call("post", "integrations", payload)
    assert status == 409 and "send it again" in body["message"]


@pytest.fixture
def listener_url():
    from tests.upstream import Upstream

    server = Upstream().start()
    yield f"{server.url}/v1"
    assert server.requests == []
    server.stop()


def test_liveavatar_llm_configurations_take_a_secret_id(editor_api, upstream):
    status, secret = editor_api.call(
        "post",
        "secrets",
        {"secret_name": "k", "secret_value": CANARY, "origins": [upstream.url]},
    )
    assert status == 201
    status, body = editor_api.call(
        "post",
        "llm_configurations",
        {
            "display_name": "My Custom LLM",
            "model_name": "gpt-4o-mini",
            "secret_id": secret["secret_id"],
            "base_url": f"{upstream.url}/v1",
        },
    )
    assert status == 201, body
    assert body["enabled"] and CustomModel.objects.filter(pk=body["llm_configuration_id"]).exists()
    assert upstream.requests[-1].headers["Authorization"] == f"Bearer {CANARY}"
    assert StoredSecret.objects.get().bound_origins


def test_liveavatar_base_url_defaults_to_openai(editor_api):
    _, secret = editor_api.call("post", "secrets", {"secret_name": "k", "secret_value": CANARY})
    status, body = editor_api.call(
        "post",
        "llm_configurations",
        {"display_name": "Default", "model_name": "gpt-4o-mini", "secret_id": secret["secret_id"]},
    )
    # No network here: the default (api.openai.com) is tried and the failure classified.
    assert status == 400 and body["error"]["kind"] in ("dns", "blocked", "connection", "timeout")
    tried = ConnectionTest.objects.get().request["url"]
    assert tried == "https://api.openai.com/v1/chat/completions"


@pytest.mark.parametrize(
    "method, path, status",
    [("put", "llms", 405), ("get", "nope", 404), ("delete", "integrations", 405)],
)
def test_unknown_paths_and_wrong_methods_answer_json(editor_api, method, path, status):
    code, body = editor_api.call(method, path)
    assert code == status and body["message"]


def test_a_secret_id_is_a_live_reference(editor_api, upstream):
    _, secret = editor_api.call(
        "post", "secrets", {"secret_name": "k", "secret_value": CANARY, "origins": [upstream.url]}
    )
    status, llm = editor_api.call(
        "post",
        "llms",
        {
            "type": "openai-compatible",
            "name": "Live",
            "model": "m",
            "uri": f"{upstream.url}/v1",
            "auth": {"type": "bearer", "secret_id": secret["secret_id"]},
        },
    )
    assert status == 201
    profile = AuthProfile.objects.get()
    assert profile.stored_secret_id is not None and profile.token == ""  # no copy
    # Rotating the stored value re-tests its users first, then every call uses it.
    new_key = "sk-rotated-0123456789abcdef"
    status, _ = editor_api.call(
        "patch", f"secrets/{secret['secret_id']}", {"secret_value": new_key}
    )
    assert status == 200
    assert upstream.requests[-1].headers["Authorization"] == f"Bearer {new_key}"
    editor_api.call("post", f"llms/{llm['id']}/test")
    assert upstream.requests[-1].headers["Authorization"] == f"Bearer {new_key}"
    # A value the endpoint refuses changes nothing.
    upstream.handler = lambda rec, h: answer(h, 401, {"error": {"message": "bad key"}})
    status, body = editor_api.call(
        "patch", f"secrets/{secret['secret_id']}", {"secret_value": "sk-wrong-0123456789"}
    )
    assert status == 409 and body["failing"][0]["error"]["kind"] == "auth"
    assert StoredSecret.objects.get().value == new_key
    # A secret in use cannot be deleted; the answer names its users.
    status, body = editor_api.call("delete", f"secrets/{secret['secret_id']}")
    assert status == 409 and "Live" in body["message"]
    assert StoredSecret.objects.exists()


def test_a_profile_made_by_the_api_is_used_by_id(editor_api, upstream):
    upstream.handler = polyglot
    status, profile = editor_api.call(
        "post",
        "auth-profiles",
        {
            "name": "OAuth",
            "type": "oauth2",
            "token_url": f"{upstream.url}/token",
            "client_id": "c",
            "client_secret": CANARY,
        },
    )
    assert status == 201, profile
    payload = {
        "name": "By id",
        "endpoint": f"{upstream.url}/v1",
        "auth": {"profile_id": profile["id"]},
        "models": [{"name": "M", "model_id": "m"}],
    }
    status, body = editor_api.call("post", "integrations", payload)
    assert status == 201, body  # first use by its owner binds it to this endpoint
    assert upstream.requests[-1].headers["Authorization"] == "Bearer at-0123456789"
    assert body["auth"]["profile_id"] == profile["id"]


def test_an_unreadable_stored_secret_is_a_409_not_a_500(editor_api, make_integration, upstream):
    from django.db import connection

    model = make_integration()
    with connection.cursor() as cursor:  # bytes no key decrypts (.update() would encrypt them)
        cursor.execute(
            "UPDATE integrations_integrationheader SET value = 'not-a-fernet-token' WHERE secret"
        )
    integration = model.integration
    status, body = editor_api.call(
        "patch", f"integrations/{integration.pk}", {"timeout_seconds": 9}
    )
    assert status == 409 and "unreadable" in body["message"]
    status, body = editor_api.call(
        "post", f"integrations/{integration.pk}/models", {"name": "B", "model_id": "b"}
    )
    assert status == 409 and "unreadable" in body["message"]
    status, body = editor_api.call("patch", f"llms/{model.pk}", {"model": "other"})
    assert status == 409 and "unreadable" in body["message"]
    assert upstream.requests == []
