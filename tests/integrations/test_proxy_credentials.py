"""Proxy credentials are secrets everywhere: scrubbed from what a proxy or upstream
reflects, never stored in clear in a test or run row.

The round-3 audit put a reflecting proxy in front: it answered with the request's own
headers, Proxy-Authorization among them, and the Basic credentials reached the caller
and the stored test and run rows, which Members can open.
"""

from __future__ import annotations

import base64
import json

import pytest

from integrations import writes
from integrations.llm import client
from integrations.llm.config import AuthConfig, LLMConfig
from integrations.models import ConnectionTest
from tests.conftest import CANARY, typed
from tests.upstream import openai_reply, send

PASSWORD = "proxy-pass-7d2e9c41Xq"
BASIC = base64.b64encode(f"proxyuser:{PASSWORD}".encode()).decode()


def reflecting(rec, h):
    """A forward proxy that answers every request with the headers it was sent."""
    echo = json.dumps(rec.headers)
    if json.loads(rec.body or b"{}").get("stream"):
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.end_headers()
        for i in range(0, len(echo), 7):
            chunk = {"choices": [{"delta": {"content": echo[i : i + 7]}}]}
            h.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        h.wfile.write(b"data: [DONE]\n\n")
        h.close_connection = True
        return
    send(h, 200, json.dumps(openai_reply(echo) | {"echo": echo}).encode(), "application/json")


def leaked(text: str) -> bool:
    return PASSWORD in text or BASIC in text or CANARY in text


@pytest.fixture
def via_proxy(upstream):
    upstream.handler = reflecting
    return typed(
        LLMConfig(
            endpoint="http://127.0.0.1:9/v1",  # nothing listens: only the proxy answers
            model_id="m",
            auth=AuthConfig(kind="bearer", token=CANARY),
            proxy_url=f"http://proxyuser:{PASSWORD}@127.0.0.1:{upstream.port}",
            timeout=5,
        )
    )


def test_reflected_proxy_credentials_are_scrubbed_from_the_answer(via_proxy, upstream):
    from integrations.services import test_prompt

    result = client.call(via_proxy, test_prompt(None))
    assert result.ok, result.error
    sent = upstream.requests[-1].headers
    assert sent["Proxy-Authorization"] == f"Basic {BASIC}"  # the proxy did get them
    assert not leaked(result.content) and not leaked(result.raw)
    assert not leaked(json.dumps(result.raw_json)) and not leaked(json.dumps(result.request))
    streamed = list(client.stream(via_proxy, test_prompt(None)))
    shown = "".join(getattr(e, "text", "") for e in streamed[:-1])
    assert streamed[-1].ok and not leaked(shown + streamed[-1].content)


def test_a_test_row_holds_no_proxy_credentials(via_proxy, db):
    writes.test_config(via_proxy, None, subject="via a proxy")
    stored = ConnectionTest.objects.get()
    assert stored.ok
    for value in (stored.response_excerpt, json.dumps(stored.request), stored.error_message):
        assert not leaked(value)
