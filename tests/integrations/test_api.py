"""The REST API: the Vectara /v2/llms examples, secrets, auth profiles, chat, errors, roles."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from integrations.models import AuthProfile, ConnectionTest, CustomModel, Integration, StoredSecret
from sandbox.models import SandboxRun
from tests.conftest import CANARY
from tests.upstream import openai_reply, reply_json


class Api:
    def __init__(self, client, token: str):
        self.client, self.token = client, token

    def call(self, method: str, path: str, data=None):
        response = getattr(self.client, method)(
            f"/api/v2/{path}",
            data=json.dumps(data) if data is not None else None,
            content_type="application/json",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        body = response.content.decode()
        assert CANARY not in body, f"a secret leaked into {path}"
        return response.status_code, (json.loads(body) if body else None)


@pytest.fixture
def editor_api(client, bob, api_token):
    return Api(client, api_token(bob))


@pytest.fixture
def member_api(client, charlie, api_token):
    return Api(client, api_token(charlie))


def vectara_examples(upstream) -> list[dict]:
    """The seed's three examples, pointed at the local upstream."""
    base = upstream.url
    return [
        {
            "type": "openai-compatible",
            "name": "Claude 3.7 Sonnet",
            "description": "Anthropic's Claude 3.7 Sonnet model",
            "model": "claude-3-7-sonnet-20250219",
            "uri": f"{base}/v1/chat/completions",
            "auth": {"type": "header", "header": "x-api-key", "value": CANARY},
            "test_model_parameters": {"max_tokens": 256},
        },
        {
            "type": "openai-compatible",
            "name": "GPT-4o Mini",
            "description": "OpenAI's 4o mini",
            "model": "gpt-4o-mini",
            "uri": f"{base}/v1/chat/completions",
            "auth": {"type": "header", "header": "Authorization", "value": f"Bearer {CANARY}"},
            "test_model_parameters": {"max_tokens": 256},
        },
        {
            "type": "openai-compatible",
            "name": "Google Gemini 2.0 Flash",
            "description": "Google 2.0 Flash",
            "model": "gemini-2.0-flash",
            "uri": f"{base}/v1beta/openai/chat/completions",
            "auth": {"type": "header", "header": "Authorization", "value": f"Bearer {CANARY}"},
            "test_model_parameters": {"max_tokens": 256},
        },
    ]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_the_vectara_examples_create_llms_with_the_documented_shape(editor_api, upstream, index):
    example = vectara_examples(upstream)[index]
    status, body = editor_api.call("post", "llms", example)
    assert status == 201, body
    assert set(body) == {"id", "name", "description", "enabled"}
    assert body["name"] == example["name"] and body["description"] == example["description"]
    assert body["enabled"] is True
    sent = upstream.requests[0]
    assert sent.path == example["uri"].removeprefix(upstream.url)
    assert sent.headers[example["auth"]["header"]] == example["auth"]["value"]
    assert sent.json()["max_tokens"] == 256 and sent.json()["model"] == example["model"]
    model = CustomModel.objects.get(pk=body["id"])
    assert model.last_test_status == "passing" and model.test_model_parameters == {
        "max_tokens": 256
    }
    assert ConnectionTest.objects.get().model == model
    # Verify as the seed says: list and look for enabled: true.
    status, listing = editor_api.call("get", "llms")
    assert status == 200 and listing["llms"][0]["enabled"] is True
    assert listing["llms"][0]["uri"] == example["uri"]


def test_bearer_auth_and_a_stored_secret_reference(editor_api, upstream):
    status, secret = editor_api.call(
        "post",
        "secrets",
        {"secret_name": "My LLM Key", "secret_type": "LLM_API_KEY", "secret_value": CANARY},
    )
    assert status == 201 and set(secret) == {
        "secret_id",
        "secret_name",
        "secret_type",
        "created_at",
    }
    payload = {
        "type": "openai-compatible",
        "name": "Via secret",
        "model": "m",
        "uri": f"{upstream.url}/v1",
        "auth": {"type": "bearer", "secret_id": secret["secret_id"]},
    }
    status, body = editor_api.call("post", "llms", payload)
    assert status == 201, body
    assert upstream.requests[0].headers["Authorization"] == f"Bearer {CANARY}"
    status, secrets = editor_api.call("get", "secrets")
    assert status == 200 and secrets[0]["secret_name"] == "My LLM Key"


def test_a_failed_test_answers_4xx_with_the_classified_error_and_creates_nothing(
    editor_api, upstream
):
    upstream.handler = reply_json({"error": {"message": f"Invalid key {CANARY}"}}, status=401)
    status, body = editor_api.call("post", "llms", vectara_examples(upstream)[0])
    assert status == 400
    assert body["error"]["kind"] == "auth" and "Check the auth profile" in body["error"]["hint"]
    assert "The endpoint test failed" in body["message"]
    assert not Integration.objects.exists() and not AuthProfile.objects.exists()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"type": "bogus"}, "type"),
        ({"name": ""}, "name"),
        ({"model": None}, "model"),
        ({"auth": {"type": "header", "value": "x"}}, "auth"),
        ({"auth": {"type": "magic"}}, "auth"),
    ],
)
def test_validation_errors_name_the_field(editor_api, upstream, change, field):
    payload = {**vectara_examples(upstream)[0], **change}
    status, body = editor_api.call("post", "llms", payload)
    assert status == 422
    assert body["message"].startswith("Invalid request") and field in body["message"]
    assert any(e["field"].startswith(field) for e in body["errors"])
    assert upstream.requests == []


def test_a_duplicate_name_is_a_conflict(editor_api, upstream):
    example = vectara_examples(upstream)[0]
    editor_api.call("post", "llms", example)
    status, body = editor_api.call("post", "llms", example)
    assert status == 409 and "exists already" in body["message"]


def test_get_patch_test_delete(editor_api, upstream):
    _, created = editor_api.call("post", "llms", vectara_examples(upstream)[1])
    llm = created["id"]
    status, detail = editor_api.call("get", f"llms/{llm}")
    assert (
        status == 200
        and detail["model"] == "gpt-4o-mini"
        and detail["auth"]["secret"].startswith("••••")
    )
    status, patched = editor_api.call(
        "patch", f"llms/{llm}", {"description": "renamed", "enabled": False}
    )
    assert status == 200 and patched["description"] == "renamed" and patched["enabled"] is False
    # Enabling again needs a passing test; the upstream now refuses.
    upstream.handler = reply_json({"error": "down"}, status=503)
    status, body = editor_api.call("patch", f"llms/{llm}", {"enabled": True})
    assert status == 400 and body["error"]["kind"] == "server_error"
    assert CustomModel.objects.get(pk=llm).enabled is False
    upstream.handler = reply_json(openai_reply("back"))
    status, body = editor_api.call("patch", f"llms/{llm}", {"enabled": True, "model": "gpt-4o"})
    assert status == 200 and body["enabled"] and body["model"] == "gpt-4o"
    status, tested = editor_api.call("post", f"llms/{llm}/test")
    assert status == 200 and tested["ok"] and tested["usage"]["total_tokens"] == 15
    status, _ = editor_api.call("delete", f"llms/{llm}")
    assert status == 204
    assert not CustomModel.objects.exists() and not Integration.objects.exists()
    assert editor_api.call("get", f"llms/{llm}")[0] == 404


def test_list_is_paginated_and_filterable(editor_api, make_integration):
    model = make_integration()
    for i in range(5):
        CustomModel.objects.create(
            integration=model.integration, name=f"Extra {i}", model_id=f"x{i}", enabled=i % 2 == 0
        )
    status, page = editor_api.call("get", "llms?limit=2&offset=0")
    assert status == 200 and len(page["llms"]) == 2
    assert page["metadata"] == {"total": 6, "limit": 2, "offset": 0, "next_offset": 2}
    status, page = editor_api.call("get", "llms?enabled=false")
    assert {llm["name"] for llm in page["llms"]} == {"Extra 1", "Extra 3"}
    status, page = editor_api.call("get", "llms?q=Extra%204")
    assert [llm["name"] for llm in page["llms"]] == ["Extra 4"]


def test_auth_profiles_by_api(editor_api, make_integration):
    make_integration()
    status, body = editor_api.call(
        "post",
        "auth-profiles",
        {"name": "Header key", "type": "header", "header": "api-key", "token": CANARY},
    )
    assert status == 201 and body["secret"].startswith("••••") and body["header"] == "api-key"
    status, profiles = editor_api.call("get", "auth-profiles")
    assert {p["name"] for p in profiles} == {"Header key", "Local key"}
    used = AuthProfile.objects.get(name="Local key")
    status, body = editor_api.call("delete", f"auth-profiles/{used.pk}")
    assert status == 409 and "Local" in body["message"]


def test_chat_runs_a_prompt_and_records_it(member_api, make_integration, upstream, charlie):
    model = make_integration()
    status, body = member_api.call(
        "post",
        "chat",
        {"model": str(model.pk), "system": "sys", "user": "hello", "parameters": {"max_tokens": 9}},
    )
    assert status == 200, body
    assert (
        body["reply"] == "pong"
        and body["usage"]["total_tokens"] == 15
        and body["usage"]["reported"]
    )
    run = SandboxRun.objects.get()
    assert str(run.pk) == body["run_id"] and run.user == charlie
    assert upstream.requests[0].json()["max_tokens"] == 9


def test_chat_failure_is_json_with_the_hint(member_api, make_integration, upstream):
    upstream.handler = reply_json({"error": {"message": "nope"}}, status=429)
    model = make_integration()
    status, body = member_api.call("post", "chat", {"model": str(model.pk), "user": "hi"})
    assert status == 502 and body["error"]["kind"] == "rate_limited" and body["error"]["run_id"]


def test_chat_is_rate_limited(member_api, make_integration, settings):
    settings.SANDBOX_RATE_LIMIT = (1, 60)
    model = make_integration()
    member_api.call("post", "chat", {"model": str(model.pk), "user": "hi"})
    status, body = member_api.call("post", "chat", {"model": str(model.pk), "user": "hi"})
    assert status == 429 and "try again in" in body["message"]


def test_a_member_token_reads_but_cannot_change(member_api, make_integration, upstream):
    model = make_integration()
    assert member_api.call("get", "llms")[0] == 200
    for method, path, data in (
        ("post", "llms", vectara_examples(upstream)[0]),
        ("patch", f"llms/{model.pk}", {"description": "x"}),
        ("delete", f"llms/{model.pk}", None),
        ("post", f"llms/{model.pk}/test", None),
        ("post", "secrets", {"secret_name": "s", "secret_value": "v"}),
    ):
        status, body = member_api.call(method, path, data)
        assert status == 403 and "Editors and Admins" in body["message"], (method, path)
    assert upstream.requests == [] and not StoredSecret.objects.exists()


@pytest.mark.parametrize("state", ["missing", "garbage", "revoked", "expired", "deactivated"])
def test_dead_tokens_get_401_json(client, bob, api_token, state):
    from integrations.models import ApiToken

    token = api_token(bob)
    row = ApiToken.objects.get(user=bob)
    if state == "revoked":
        row.revoked_at = timezone.now()
        row.save()
    if state == "expired":
        row.expires_at = timezone.now() - timezone.timedelta(seconds=1)
        row.save()
    if state == "deactivated":
        bob.is_active = False
        bob.save()
    headers = (
        {}
        if state == "missing"
        else {"Authorization": f"Bearer {'byo_nope' if state == 'garbage' else token}"}
    )
    response = client.get("/api/v2/llms", headers=headers)
    assert response.status_code == 401
    assert "API token" in response.json()["message"]


def test_token_use_is_recorded(client, bob, api_token):
    from integrations.models import ApiToken

    token = api_token(bob)
    client.get("/api/v2/llms", headers={"Authorization": f"Bearer {token}"})
    assert ApiToken.objects.get(user=bob).last_used_at is not None


def test_the_api_docs_need_a_login_and_load_no_cdn(client, charlie):
    assert client.get("/api/docs").status_code == 302
    client.force_login(charlie)
    html = client.get("/api/docs").content.decode()
    assert "swagger" in html.lower() and "cdn" not in html.lower()
    schema = client.get("/api/openapi.json").json()
    assert "/api/v2/llms" in schema["paths"] and "/api/v2/chat" in schema["paths"]


def test_a_failed_change_leaves_the_saved_model_and_its_badge_alone(editor_api, upstream):
    _, created = editor_api.call("post", "llms", vectara_examples(upstream)[1])
    upstream.handler = reply_json({"error": {"message": "no such model"}}, status=404)
    status, body = editor_api.call("patch", f"llms/{created['id']}", {"model": "gpt-nope"})
    assert status == 400 and body["error"]["kind"] == "unknown_model"
    model = CustomModel.objects.get(pk=created["id"])
    assert model.model_id == "gpt-4o-mini" and model.last_test_status == "passing"
    assert ConnectionTest.objects.filter(ok=False, model__isnull=True).count() == 1


def test_patch_auth_rotates_the_key_when_the_new_one_passes(editor_api, make_integration, upstream):
    model = make_integration(secret_header=None)
    new_key = "sk-rotated-key-0123456789"
    status, body = editor_api.call(
        "patch", f"llms/{model.pk}", {"auth": {"type": "bearer", "token": new_key}}
    )
    assert status == 200, body
    assert upstream.requests[-1].headers["Authorization"] == f"Bearer {new_key}"
    model.integration.refresh_from_db()
    assert model.integration.auth_profile.token == new_key
    assert body["auth"]["secret"].endswith(new_key[-4:])


def test_patch_auth_refuses_a_wrong_key_and_changes_nothing(editor_api, make_integration, upstream):
    model = make_integration(secret_header=None)
    profile_before = model.integration.auth_profile_id
    upstream.handler = reply_json({"error": {"message": "bad key"}}, status=401)
    status, body = editor_api.call(
        "patch", f"llms/{model.pk}", {"auth": {"type": "bearer", "token": "sk-wrong-0123456789"}}
    )
    assert status == 400 and body["error"]["kind"] == "auth"
    model.integration.refresh_from_db()
    assert model.integration.auth_profile_id == profile_before
    assert model.integration.auth_profile.token == CANARY
    assert AuthProfile.objects.count() == 1
    model.refresh_from_db()
    assert model.last_test_status == "never"  # a refused change moves no badge
