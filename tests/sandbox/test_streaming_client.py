"""client.stream against real local servers: tokens, usage, fallbacks, breaks, stop."""

from __future__ import annotations

import json
import time

from integrations.llm import transport
from integrations.llm.chat import BlockDelta, BlockStarted
from integrations.llm.client import stream
from integrations.llm.config import AuthConfig, CallResult, LLMConfig, Prompt
from tests.conftest import typed
from tests.upstream import openai_reply, reply_anthropic_sse, reply_json, reply_sse

PROMPT = Prompt.of("sys", "hi", {"max_tokens": 20})


def cfg(upstream, **kwargs):
    return typed(LLMConfig(endpoint=f"{upstream.url}/v1", model_id="m", timeout=5, **kwargs))


def collect(gen):
    """The text deltas a stream yielded, and its final result."""
    items = list(gen)
    texts = [i.text for i in items if isinstance(i, BlockDelta) and i.kind == "text" and i.text]
    return texts, items[-1]


def test_it_streams_tokens_and_reads_the_final_usage(upstream):
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    upstream.handler = reply_sse(["Hel", "lo", "!"], usage=usage)
    tokens, result = collect(stream(cfg(upstream), PROMPT))
    assert tokens == ["Hel", "lo", "!"]
    assert isinstance(result, CallResult) and result.ok
    assert result.content == "Hello!" and result.streamed
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (7, 10)
    assert result.ttft_ms is not None and result.finish_reason == "stop"
    sent = upstream.requests[0].json()
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_finished_streams_leave_their_connections_for_the_next_calls(upstream):
    """After [DONE] the body's end is read, so the pooled connection is kept (calls are
    dealt over SHARDS pools, each with its own connections)."""
    upstream.handler = reply_sse(["a", "b"])
    for _ in range(2 * transport.SHARDS):
        assert collect(stream(cfg(upstream), PROMPT))[1].ok
    assert len({r.client for r in upstream.requests}) <= transport.SHARDS


def test_an_upstream_that_never_ends_its_body_after_done_costs_little(upstream):
    """[DONE] ends the answer: a body left open after it is given up on at once."""

    def hang_after_done(rec, h):
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        delta = {"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"}]}
        for payload in (f"data: {json.dumps(delta)}\n\n", "data: [DONE]\n\n", ": more\n"):
            h.wfile.write(f"{len(payload):x}\r\n{payload}\r\n".encode())
            h.wfile.flush()
        time.sleep(2)  # and no terminating chunk

    upstream.handler = hang_after_done
    started = time.monotonic()
    tokens, result = collect(stream(cfg(upstream), PROMPT))
    assert result.ok and tokens == ["a"]
    assert time.monotonic() - started < 1


def test_a_stream_without_usage_reports_not_reported(upstream):
    upstream.handler = reply_sse(["a", "b"])
    _, result = collect(stream(cfg(upstream), PROMPT))
    assert result.ok and not result.usage.reported


def test_a_stream_that_breaks_midway_fails_and_keeps_the_partial_text(upstream):
    upstream.handler = reply_sse(["one ", "two ", "three"], break_after=2)
    tokens, result = collect(stream(cfg(upstream), PROMPT))
    assert tokens == ["one ", "two "]
    assert not result.ok and result.error.kind == "connection"
    assert result.content == "one two "


def test_an_endpoint_that_answers_json_falls_back_cleanly(upstream):
    upstream.handler = reply_json(openai_reply("plain answer"))
    tokens, result = collect(stream(cfg(upstream), PROMPT))
    # Answered in one piece: the text still comes as a delta before the result.
    assert tokens == ["plain answer"] and result.ok and result.content == "plain answer"
    assert not result.streamed and result.usage.total_tokens == 15


def test_an_endpoint_rejecting_stream_options_is_retried_without_streaming(upstream):
    def handle(rec, h):
        if rec.json().get("stream"):
            reply_json({"error": {"message": "Unknown parameter: stream_options"}}, status=400)(
                rec, h
            )
        else:
            reply_json(openai_reply("no stream here"))(rec, h)

    upstream.handler = handle
    _, result = collect(stream(cfg(upstream), PROMPT))
    assert result.ok and result.content == "no stream here"
    assert len(upstream.requests) == 2


def test_an_error_status_is_classified_like_a_normal_call(upstream):
    upstream.handler = reply_json({"error": {"message": "bad key"}}, status=401)
    _, result = collect(
        stream(cfg(upstream, auth=AuthConfig(kind="bearer", token="t" * 20)), PROMPT)
    )
    assert result.error.kind == "auth"


def test_anthropic_streams_with_input_and_output_tokens(upstream):
    upstream.handler = reply_anthropic_sse(["Hi", " there"], input_tokens=9, output_tokens=2)
    tokens, result = collect(stream(cfg(upstream, protocol="anthropic-messages"), PROMPT))
    assert tokens == ["Hi", " there"]
    assert result.ok and result.finish_reason == "stop" and result.finish.raw == "end_turn"
    assert (
        result.usage.prompt_tokens,
        result.usage.completion_tokens,
        result.usage.total_tokens,
    ) == (9, 2, 11)


def test_closing_the_stream_early_closes_the_upstream_connection(upstream):
    upstream.handler = reply_sse([f"w{i} " for i in range(50)], delay=0.05)
    gen = stream(cfg(upstream), PROMPT)
    assert next(gen) == BlockStarted(0, "text")
    assert next(gen).text == "w0 "
    gen.close()
    import time

    time.sleep(0.5)
    # The server noticed the closed connection and stopped writing.
    assert (
        upstream.requests[0].finished
        and upstream.requests[0].finished - upstream.requests[0].started < 2
    )


def test_a_custom_template_falls_back_to_a_single_call(upstream):
    upstream.handler = reply_json(openai_reply("custom ok"))
    config = cfg(
        upstream,
        protocol="custom",
        request_template={"model": "{{model}}", "messages": "{{messages}}"},
    )
    config = LLMConfig(**{**config.__dict__, "endpoint": f"{upstream.url}/gen"})
    _, result = collect(stream(config, PROMPT))
    assert result.ok and result.content == "custom ok"


def test_the_load_test_upstream_honours_latency_token_rate_and_failure_ratio(upstream):
    import time as clock

    from tests.upstream import reply_load

    upstream.handler = reply_load(latency=0.2, tokens=10, token_rate=50, failure_ratio=0.5, seed=3)
    outcomes = []
    for _ in range(10):
        started = clock.perf_counter()
        tokens, result = collect(stream(cfg(upstream), PROMPT))
        outcomes.append((result.ok, len(tokens), clock.perf_counter() - started))
    failures = [o for o in outcomes if not o[0]]
    assert 2 <= len(failures) <= 8  # about half, deterministic for the seed
    for ok, count, elapsed in outcomes:
        assert elapsed >= 0.2
        if ok:
            assert count == 10 and elapsed >= 0.2 + 9 / 50
