"""The client and transport against real local HTTP servers: every failure is classified."""

from __future__ import annotations

import socket
import time

import pytest
from django.test import override_settings

from integrations.llm import transport
from integrations.llm.client import call
from integrations.llm.config import AuthConfig, Header, LLMConfig, Prompt
from integrations.llm.errors import LLMError
from tests.conftest import typed
from tests.upstream import (
    certificate,
    openai_reply,
    reply_json,
    reply_oversized,
    reply_redirect,
    reply_reset,
    reply_slow_headers,
    reply_text,
    reply_trickle,
)

PROMPT = Prompt.of(system="sys", user="hello", params={"max_tokens": 8})
SECRET = "sk-live-secret-abcdef0123456789"


def cfg(upstream, **kwargs) -> LLMConfig:
    base = {
        "endpoint": f"{upstream.url}/v1",
        "model_id": "test-model",
        "auth": AuthConfig(kind="bearer", token=SECRET),
        "timeout": 5,
    }
    base.update(kwargs)
    return typed(LLMConfig(**base))


def test_it_returns_content_usage_and_redacted_request_on_success(upstream):
    upstream.handler = reply_json(openai_reply("pong"))
    result = call(cfg(upstream), PROMPT)
    assert result.ok, result.error
    assert result.content == "pong"
    assert result.status_code == 200
    assert (
        result.usage.prompt_tokens,
        result.usage.completion_tokens,
        result.usage.total_tokens,
    ) == (12, 3, 15)
    assert result.finish_reason == "stop"
    assert result.latency_ms >= 0
    sent = upstream.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == f"Bearer {SECRET}"
    assert sent.json()["messages"][1] == {"role": "user", "content": "hello"}
    assert result.request["headers"]["Authorization"] == "Bearer ••••6789"
    assert SECRET not in str(result.request)


def test_it_reports_usage_as_not_reported_when_the_endpoint_sends_none(upstream):
    upstream.handler = reply_json(openai_reply("pong", usage=False))
    result = call(cfg(upstream), PROMPT)
    assert result.ok and not result.usage.reported


@pytest.mark.parametrize(
    "status, body, kind",
    [
        (
            401,
            {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}},
            "auth",
        ),
        (403, {"error": {"message": "no access"}}, "forbidden"),
        (
            404,
            {"error": {"message": "The model `nope` does not exist", "code": "model_not_found"}},
            "unknown_model",
        ),
        (404, {"detail": "Not Found"}, "not_found_path"),
        (413, {"error": {"message": "too big"}}, "too_large"),
        (429, {"error": {"message": "Rate limit reached"}}, "rate_limited"),
        (400, {"error": {"message": "max_tokens is too large"}}, "bad_request"),
        (503, {"error": "overloaded"}, "server_error"),
    ],
)
def test_it_classifies_http_errors_and_shows_the_upstream_message(upstream, status, body, kind):
    upstream.handler = reply_json(body, status=status)
    result = call(cfg(upstream), PROMPT)
    assert not result.ok
    assert result.error.kind == kind
    assert result.error.status == status
    assert result.error.hint
    assert result.error.upstream_message


def test_it_classifies_a_500_with_an_html_page(upstream):
    upstream.handler = reply_text("<html><body><h1>Internal Server Error</h1></body></html>", 500)
    result = call(cfg(upstream), PROMPT)
    assert result.error.kind == "server_error"
    assert result.error.upstream_message == ""  # an HTML page is no one-line message
    assert "Internal Server Error" in result.raw


def test_it_classifies_invalid_json(upstream):
    upstream.handler = reply_text("this is not json {", 200, "application/json")
    result = call(cfg(upstream), PROMPT)
    assert result.error.kind == "non_json"


def test_it_classifies_a_web_page_answered_with_200(upstream):
    upstream.handler = reply_text("<!doctype html><title>Login</title>", 200)
    result = call(cfg(upstream), PROMPT)
    assert result.error.kind == "non_json"
    assert "text/html" in result.error.message


def test_it_classifies_json_without_choices(upstream):
    upstream.handler = reply_json({"id": "x", "object": "chat.completion"})
    result = call(cfg(upstream), PROMPT)
    assert result.error.kind == "bad_response"


def test_it_times_out_on_slow_headers(upstream):
    upstream.handler = reply_slow_headers(3)
    started = time.monotonic()
    result = call(cfg(upstream, timeout=1), PROMPT)
    assert result.error.kind == "timeout"
    assert time.monotonic() - started < 2.5


def test_the_deadline_holds_against_a_body_trickled_byte_by_byte(upstream):
    # Each byte comes well inside any per-read timeout; only an overall deadline stops it.
    upstream.handler = reply_trickle(total_bytes=100, interval=0.1)
    started = time.monotonic()
    result = call(cfg(upstream, timeout=1), PROMPT)
    elapsed = time.monotonic() - started
    assert result.error.kind == "timeout"
    assert elapsed < 2.5


@override_settings(LLM_MAX_RESPONSE_BYTES=100_000)
@pytest.mark.parametrize("declared", [True, False])
def test_it_refuses_an_oversized_body(upstream, declared):
    upstream.handler = reply_oversized(1_000_000, declare_length=declared)
    result = call(cfg(upstream), PROMPT)
    assert result.error.kind == "oversized"


def test_it_does_not_follow_a_redirect_to_the_metadata_address(upstream):
    upstream.handler = reply_redirect("http://169.254.169.254/latest/meta-data/")
    result = call(cfg(upstream), PROMPT)
    assert result.error.kind == "redirect"
    assert "169.254.169.254" in result.error.message
    assert len(upstream.requests) == 1


def test_it_classifies_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = LLMConfig(endpoint=f"http://127.0.0.1:{port}/v1", model_id="m", timeout=3)
    result = call(config, PROMPT)
    assert result.error.kind == "refused"


def test_it_classifies_a_reset_connection(upstream):
    upstream.handler = reply_reset()
    result = call(cfg(upstream), PROMPT)
    assert result.error.kind in ("connection", "refused")


def test_it_classifies_an_unresolvable_host():
    config = LLMConfig(endpoint="http://no-such-host.invalid/v1", model_id="m", timeout=3)
    result = call(config, PROMPT)
    assert result.error.kind == "dns"


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "0x7f.0.0.1",
        "2130706433",
        "0177.0.0.1",
        "[::ffff:169.254.169.254]",
        "[::ffff:127.0.0.1]",
        "[64:ff9b::a9fe:a9fe]",
        "[fe80::1]",
        "[fd00:ec2::254]",
        "0.0.0.0",
        "localhost",
        "10.0.0.8",
        "192.168.1.10",
        "[fc00::1]",
    ],
)
@override_settings(LLM_ALLOW_LOOPBACK=False, LLM_ALLOW_PRIVATE=False)
def test_it_refuses_blocked_addresses_before_connecting(host):
    config = LLMConfig(endpoint=f"http://{host}:9/v1", model_id="m", timeout=3)
    result = call(config, PROMPT)
    # httpx itself refuses the octal spelling as an invalid URL; refused either way.
    assert result.error.kind in ("blocked", "invalid_url"), (host, result.error)
    assert result.error.kind == "blocked" or host == "0177.0.0.1"


@override_settings(
    LLM_ALLOW_LOOPBACK=True, LLM_ALLOW_PRIVATE=True, LLM_ALLOWED_NETWORKS=["169.254.0.0/16"]
)
@pytest.mark.parametrize("host", ["169.254.169.254", "[::ffff:169.254.169.254]", "[fd00:ec2::254]"])
def test_metadata_addresses_stay_refused_whatever_the_settings(host):
    result = call(LLMConfig(endpoint=f"http://{host}/v1", model_id="m", timeout=2), PROMPT)
    assert result.error.kind == "blocked"


@override_settings(LLM_ALLOW_LOOPBACK=False, LLM_ALLOWED_NETWORKS=["127.0.0.1/32"])
def test_an_allowlisted_network_is_reachable(upstream):
    upstream.handler = reply_json(openai_reply("ok"))
    assert call(cfg(upstream), PROMPT).ok


@override_settings(LLM_ALLOW_LOOPBACK=False)
def test_loopback_is_refused_in_production_settings(upstream):
    result = call(cfg(upstream), PROMPT)
    assert result.error.kind == "blocked"
    assert upstream.requests == []


def test_the_socket_goes_to_the_checked_address(monkeypatch, upstream):
    """Resolution happens once, in the guard; a second lookup cannot swap the address."""
    upstream.handler = reply_json(openai_reply("ok"))
    answers = iter(["127.0.0.1", "169.254.169.254"])
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.test":
            return real(next(answers), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    result = call(cfg(upstream, endpoint=f"http://rebind.test:{upstream.port}/v1"), PROMPT)
    assert result.ok, result.error
    assert upstream.requests[0].headers["Host"] == f"rebind.test:{upstream.port}"


def test_it_refuses_non_http_schemes():
    for url in ("file:///etc/passwd", "ftp://x/v1", "gopher://x"):
        with pytest.raises(LLMError) as exc:
            transport.check_url(url)
        assert exc.value.kind == "invalid_url"


def test_it_sends_no_cookies_back(upstream):
    def set_cookie(rec, h):
        body = b'{"choices":[{"message":{"content":"c"}}]}'
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Set-Cookie", "session=abc; Path=/")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    upstream.handler = set_cookie
    call(cfg(upstream), PROMPT)
    call(cfg(upstream), PROMPT)
    assert "Cookie" not in upstream.requests[1].headers


def test_a_secret_echoed_by_the_upstream_is_scrubbed(upstream):
    upstream.handler = reply_json({"error": {"message": f"key {SECRET} is invalid"}}, status=401)
    result = call(cfg(upstream, headers=(Header("X-S", "hdr-val-0123456789", True),)), PROMPT)
    assert SECRET not in result.error.upstream_message
    assert SECRET not in result.raw
    assert "••••" in result.error.upstream_message


def test_oauth2_client_credentials_fetches_caches_and_sends_the_token(upstream):
    def handle(rec, h):
        if rec.path == "/token":
            from tests.upstream import send

            send(
                h,
                200,
                b'{"access_token": "at-fetched-token-0001", "expires_in": 3600}',
                "application/json",
            )
        else:
            reply_json(openai_reply("ok"))(rec, h)

    upstream.handler = handle
    auth = AuthConfig(
        kind="oauth2",
        token_url=f"{upstream.url}/token",
        client_id="cid",
        client_secret="cs-secret-00001111",
        scope="llm",
    )
    first = call(cfg(upstream, auth=auth), PROMPT)
    second = call(cfg(upstream, auth=auth), PROMPT)
    assert first.ok and second.ok
    paths = [r.path for r in upstream.requests]
    assert paths.count("/token") == 1
    assert upstream.requests[1].headers["Authorization"] == "Bearer at-fetched-token-0001"
    assert b"grant_type=client_credentials" in upstream.requests[0].body
    assert "at-fetched-token-0001" not in str(first.request)


def test_oauth2_refreshes_once_after_a_401(upstream):
    tokens = iter(["at-old-token-00000001", "at-new-token-00000002"])

    def handle(rec, h):
        from tests.upstream import send

        if rec.path == "/token":
            send(
                h,
                200,
                (f'{{"access_token": "{next(tokens)}", "expires_in": 3600}}').encode(),
                "application/json",
            )
        elif rec.headers["Authorization"].endswith("00000001"):
            send(h, 401, b'{"error": "expired"}', "application/json")
        else:
            reply_json(openai_reply("fresh"))(rec, h)

    upstream.handler = handle
    auth = AuthConfig(
        kind="oauth2",
        token_url=f"{upstream.url}/token",
        client_id="c2",
        client_secret="cs-2-secret-value",
    )
    result = call(cfg(upstream, auth=auth), PROMPT)
    assert result.ok and result.content == "fresh"


@override_settings(LLM_ALLOW_LOOPBACK=False, LLM_ALLOW_PRIVATE=False)
@pytest.mark.parametrize(
    "answers",
    [["169.254.169.254"], ["93.184.216.34", "10.0.0.5"], ["::ffff:169.254.169.254"], ["127.0.0.1"]],
)
def test_a_hostname_resolving_to_any_blocked_address_is_refused(monkeypatch, answers):
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host == "llm.example.test":
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port),
                )
                for a in answers
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    result = call(
        LLMConfig(endpoint="https://llm.example.test/v1", model_id="m", timeout=2), PROMPT
    )
    assert result.error.kind == "blocked"
    assert "llm.example.test" in result.error.message


def test_an_https_upstream_is_trusted_through_its_ca_bundle_only(tls_upstream):
    tls_upstream.handler = reply_json(openai_reply("pong"))
    refused = call(cfg(tls_upstream), PROMPT)
    assert refused.error.kind == "tls" and not tls_upstream.requests
    trusted = call(cfg(tls_upstream, ca_bundle=certificate()[0]), PROMPT)
    assert trusted.ok and trusted.content == "pong"
    assert call(cfg(tls_upstream, verify_tls=False), PROMPT).ok
    assert tls_upstream.requests[0].headers["Authorization"] == f"Bearer {SECRET}"


def test_a_tls_context_is_made_once_per_process_and_options():
    """Loading the CA store costs ~30 ms and ~1 MB: each options' context is made once
    (gunicorn's master makes the default ones before it forks). httpcore sets the ALPN of
    the context httpx is given, so the lean client (HTTP/1.1 only) has a context of its own."""
    options = transport.ClientOptions()
    assert transport._ssl_context(options) is transport._ssl_context(options)
    lean = transport._http1_context(options)
    assert lean is transport._http1_context(options)
    assert lean is not transport._ssl_context(options)
    unchecked = transport.ClientOptions(verify_tls=False)
    assert transport._ssl_context(unchecked) is not transport._ssl_context(options)
    assert transport._ssl_context(unchecked).check_hostname is False
    assert transport._ssl_context(options).check_hostname is True
