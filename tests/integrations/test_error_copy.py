"""Error copy says each thing once, and LiteLLM's wording is classified as other servers'."""

from __future__ import annotations

import socket

import pytest
from django.template.loader import render_to_string

from integrations.llm import client
from integrations.llm.config import LLMConfig, Prompt
from integrations.llm.errors import LLMError
from tests.conftest import typed
from tests.upstream import reply_json

LITELLM_INVALID_MODEL = {
    "error": {
        "message": "litellm.BadRequestError: Invalid model name passed in model=gpt-5. "
        "Call `/v1/models` to view available models for your key.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "400",
    }
}


def _call(url: str):
    return client.call(
        typed(LLMConfig(endpoint=url + "/v1", model_id="gpt-5")), Prompt.of(user="hi")
    )


def test_litellms_invalid_model_name_is_an_unknown_model(upstream):
    upstream.handler = reply_json(LITELLM_INVALID_MODEL, status=400)
    result = _call(upstream.url)
    assert result.error.kind == "unknown_model"
    assert "Model ID" in result.error.hint


def test_a_refused_connection_is_said_once():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _call(f"http://127.0.0.1:{port}")
    assert result.error.kind == "refused"
    html = render_to_string("_error_panel.html", {"error": result.error})
    assert html.lower().count("connection refused") == 1


def test_refused_credentials_are_said_once(upstream):
    upstream.handler = reply_json({"error": {"message": "Incorrect API key"}}, status=401)
    error = _call(upstream.url).error
    html = render_to_string("_error_panel.html", {"error": error})
    assert error.kind == "auth"
    assert html.lower().count("credentials were refused") == 1
    assert "Authentication failed" in html and "Check the auth profile" in html


def test_a_message_that_differs_from_its_title_keeps_both():
    error = LLMError("timeout", "No answer within 5 s.")
    assert error.headline == "Timed out: No answer within 5 s."


GATEWAY_KEY_REFUSALS = {
    "LiteLLM, no database for its keys": (400, {"error": {"message": "No connected db.", "type": "no_db_connection", "param": None, "code": "400"}}),
    "LiteLLM, a wrong key": (400, {"error": {"message": "Authentication Error, Invalid proxy server token passed. Received API Key = sk-...abcd", "type": "auth_error", "param": "None", "code": "400"}}),
    "Portkey": (403, {"status": "failure", "message": "Invalid API Key"}),
    "OpenRouter": (401, {"error": {"message": "No auth credentials found", "code": 401}}),
}  # fmt: skip


@pytest.mark.parametrize("who", list(GATEWAY_KEY_REFUSALS))
def test_the_common_gateways_refusing_a_key_is_an_auth_failure(upstream, who):
    status, body = GATEWAY_KEY_REFUSALS[who]
    upstream.handler = reply_json(body, status=status)
    assert _call(upstream.url).error.kind == "auth"


def test_a_bad_request_about_something_else_stays_a_bad_request(upstream):
    body = {"error": {"message": "temperature must be at most 2", "type": "invalid_request_error"}}
    upstream.handler = reply_json(body, status=400)
    assert _call(upstream.url).error.kind == "bad_request"
