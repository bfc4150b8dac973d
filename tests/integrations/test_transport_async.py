"""The event loop's client (the gateway under ASGI) keeps every rule of the threaded one:
blocked addresses, no redirects, the overall deadline, the size cap, scrubbing, and
classified errors. Real local servers, as in test_transport.py."""

from __future__ import annotations

import asyncio
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import override_settings

from integrations.llm import transport
from integrations.llm.chat import BlockDelta
from integrations.llm.client import acall, astream
from integrations.llm.config import CallResult, LLMConfig
from tests.integrations.test_transport import PROMPT, SECRET, cfg
from tests.upstream import (
    certificate,
    openai_reply,
    reply_json,
    reply_oversized,
    reply_redirect,
    reply_sse,
    reply_trickle,
)


def run(coroutine):
    """Run on a loop of its own, in a thread: a browser test earlier in this process may
    have left Playwright's loop marked as running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def streamed(config) -> tuple[list[str], CallResult]:
    async def collect():
        parts = [item async for item in astream(config, PROMPT)]
        texts = [p.text for p in parts[:-1] if isinstance(p, BlockDelta) and p.kind == "text"]
        return [t for t in texts if t], parts[-1]

    return run(collect())


@pytest.mark.parametrize(
    "host", ["169.254.169.254", "0x7f.0.0.1", "[::ffff:127.0.0.1]", "localhost", "10.0.0.8"]
)
@override_settings(LLM_ALLOW_LOOPBACK=False, LLM_ALLOW_PRIVATE=False)
def test_it_refuses_blocked_addresses_before_connecting(host):
    config = LLMConfig(endpoint=f"http://{host}:9/v1", model_id="m", timeout=3)
    assert run(acall(config, PROMPT)).error.kind == "blocked"
    assert streamed(config)[1].error.kind == "blocked"


def test_a_call_and_a_stream_answer_with_usage(upstream):
    upstream.handler = reply_json(openai_reply("pong"))
    result = run(acall(cfg(upstream), PROMPT))
    assert result.ok and result.content == "pong" and result.usage.total_tokens
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    upstream.handler = reply_sse(["a ", "b"], usage=usage)
    parts, result = streamed(cfg(upstream))
    assert "".join(parts) == "a b" and result.ok and result.usage.total_tokens == 5
    assert result.ttft_ms is not None


def test_finished_streams_leave_their_connections_for_the_next_calls(upstream):
    """The body's end is read after [DONE], so the connection is kept, not closed: a new
    one per call cost a connect (and a TLS handshake) each time. Calls one after another
    use one connection."""
    upstream.handler = reply_sse(["a ", "b"])
    calls = 2 * transport.SHARDS

    async def many():
        for _ in range(calls):
            assert (await anext_result(astream(cfg(upstream), PROMPT))).ok

    run(many())
    assert len(upstream.requests) == calls
    assert len({r.client for r in upstream.requests}) == 1


def test_a_kept_connection_the_upstream_wrote_on_while_idle_is_not_reused(upstream):
    """Bytes after a complete answer are no part of the next one: that connection is
    dropped and the next call opens a fresh one."""
    answer = reply_json(openai_reply("pong"))

    def answer_then_stray_bytes(rec, h):
        answer(rec, h)
        time.sleep(0.05)  # later, while the connection waits in its pool
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")
        h.wfile.flush()

    upstream.handler = answer_then_stray_bytes

    async def many():
        results = []
        for _ in range(4):
            results.append(await acall(cfg(upstream), PROMPT))
            await asyncio.sleep(0.2)  # the stray bytes arrive while the connection is idle
        return results

    results = run(many())
    assert len({r.client for r in upstream.requests}) == 4  # none was reused
    assert all(r.ok and r.content == "pong" for r in results), [
        (r.error and (r.error.kind, r.error.message)) for r in results if not r.ok
    ]


async def anext_result(events):
    return [item async for item in events][-1]


def test_it_does_not_follow_a_redirect(upstream):
    upstream.handler = reply_redirect("http://169.254.169.254/latest/meta-data/")
    assert run(acall(cfg(upstream), PROMPT)).error.kind == "redirect"
    assert len(upstream.requests) == 1


def test_the_deadline_holds_against_a_trickled_body(upstream):
    upstream.handler = reply_trickle(total_bytes=100, interval=0.1)
    started = time.monotonic()
    result = run(acall(cfg(upstream, timeout=1), PROMPT))
    assert result.error.kind == "timeout" and time.monotonic() - started < 2.5


@override_settings(LLM_MAX_RESPONSE_BYTES=100_000)
def test_it_refuses_an_oversized_body(upstream):
    upstream.handler = reply_oversized(1_000_000, declare_length=False)
    assert run(acall(cfg(upstream), PROMPT)).error.kind == "oversized"


def test_an_echoed_key_is_scrubbed_from_a_stream(upstream):
    upstream.handler = reply_sse(["your key is ", SECRET, " ok"])
    parts, result = streamed(cfg(upstream))
    assert SECRET not in "".join(parts) and SECRET not in result.content


def test_connection_refused_is_classified():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = LLMConfig(endpoint=f"http://127.0.0.1:{port}/v1", model_id="m", timeout=3)
    assert run(acall(config, PROMPT)).error.kind == "refused"


def test_an_https_upstream_is_trusted_through_its_ca_bundle_only(tls_upstream):
    """The loop's connections do their own TLS handshake (asyncio's start_tls)."""
    tls_upstream.handler = reply_json(openai_reply("pong"))
    refused = run(acall(cfg(tls_upstream), PROMPT))
    assert refused.error.kind == "tls" and not tls_upstream.requests
    trusted = cfg(tls_upstream, ca_bundle=certificate()[0])
    result = run(acall(trusted, PROMPT))
    assert result.ok and result.content == "pong"
    tls_upstream.handler = reply_sse(["a ", "b"])
    parts, result = streamed(trusted)
    assert "".join(parts) == "a b" and result.ok
    tls_upstream.handler = reply_json(openai_reply("pong"))
    assert run(acall(cfg(tls_upstream, verify_tls=False), PROMPT)).ok
    assert tls_upstream.requests[0].headers["Authorization"] == f"Bearer {SECRET}"
