"""Scripts written for the seed products run unchanged: Vectara's POST /v2/llms and
LiveAvatar's /v1/secrets and /v1/llm_configurations, with the API token as their
x-api-key header, and the payloads exactly as their documents print them (only the
hosts are local)."""

from __future__ import annotations

import json

import pytest

from integrations.models import CustomModel
from tests.conftest import CANARY
from tests.upstream import openai_reply, send

pytestmark = pytest.mark.django_db


def post(client, path: str, body: dict, key: str, header: str = "HTTP_X_API_KEY"):
    answer = client.post(path, json.dumps(body), content_type="application/json",
                         HTTP_ACCEPT="application/json", **{header: key})  # fmt: skip
    return answer.status_code, answer.json()


def test_vectaras_curl_against_v2_llms_with_x_api_key(client, bob, api_token, upstream):
    status, body = post(client, "/v2/llms", {
        "type": "openai-compatible",
        "name": "GPT-4o Mini",
        "description": "OpenAI's 4o mini",
        "model": "gpt-4o-mini",
        "uri": f"{upstream.url}/v1/chat/completions",
        "auth": {"type": "header", "header": "Authorization", "value": f"Bearer {CANARY}"},
        "test_model_parameters": {"max_tokens": 256},
    }, api_token(bob))  # fmt: skip
    assert status == 201, body
    assert body["name"] == "GPT-4o Mini" and body["id"]
    assert upstream.requests[-1].path == "/v1/chat/completions"
    assert upstream.requests[-1].json()["max_tokens"] == 256
    status, listed = post(client, "/v2/llms", {}, "byo_not-a-token")
    assert status == 401 and "x-api-key" in listed["message"]


def test_liveavatars_two_calls_against_v1_with_x_api_key(
    client, bob, api_token, settings, upstream
):
    """Its base_url is a host with no path (https://api.openai.com): the console uses the
    provider's standard root, /v1/chat/completions, and this upstream serves nothing else."""

    def only_v1(rec, h):
        if rec.path != "/v1/chat/completions":
            return send(h, 404, b'{"error": {"message": "not found"}}', "application/json")
        return send(h, 200, json.dumps(openai_reply("hi")).encode(), "application/json")

    upstream.handler = only_v1
    key = api_token(bob)
    status, secret = post(client, "/v1/secrets", {
        "secret_type": "LLM_API_KEY",
        "secret_value": CANARY,
        "secret_name": "My LLM Key",
    }, key)  # fmt: skip
    assert status == 201, secret
    status, body = post(client, "/v1/llm_configurations", {
        "display_name": "My Custom LLM",
        "model_name": "gpt-4o-mini",
        "secret_id": secret["secret_id"],
        "base_url": upstream.url,
    }, key)  # fmt: skip
    assert status == 201, body
    assert body["base_url"] == f"{upstream.url}/v1"
    assert upstream.requests[-1].path == "/v1/chat/completions"
    assert upstream.requests[-1].headers["Authorization"] == f"Bearer {CANARY}"
    assert CustomModel.objects.get(pk=body["llm_configuration_id"]).enabled


def test_the_gateways_own_v1_paths_are_untouched(client):
    assert (
        client.post("/v1/chat/completions", "{}", content_type="application/json").status_code
        == 401
    )
    assert client.get("/v1/secretsx").status_code == 404
