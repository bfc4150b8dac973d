"""The OpenAI door in the caller's terms: finish reasons that never lie, upstream errors
the SDK understands (a 400 is not retried), estimated usage marked, the small doors
(/v1/models/{id}, Azure's and Anthropic's key headers, CORS), thinking kept across turns.
"""

from __future__ import annotations

import httpx
import openai
import pytest

from integrations.gateway import keys
from integrations.llm.config import LLMConfig
from integrations.llm.protocols import adapter_for
from tests.fake_models import anthropic_model
from tests.upstream import openai_reply, reply_json, reply_sse

pytestmark = pytest.mark.django_db(transaction=True)

HI = [{"role": "user", "content": "Hi"}]


def sdk(server, raw: str, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=raw, timeout=20, **kwargs)


FINISHES = {
    "openai-chat": [("stop", "stop"), ("length", "length"), ("tool_calls", "tool_calls"),
                    ("function_call", "tool_calls"), ("content_filter", "content_filter"), ("eos", "other")],
    "azure-openai": [("stop", "stop"), ("content_filter", "content_filter")],
    "openai-completions": [("stop", "stop"), ("length", "length"), ("content_filter", "content_filter"), ("odd", "other")],
    "anthropic-messages": [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
                           ("tool_use", "tool_calls"), ("refusal", "content_filter"), ("pause_turn", "other"),
                           ("model_context_window_exceeded", "length"), ("new_reason", "other")],
    "custom": [("stop", "stop"), ("length", "length"), ("done", "other")],
}  # fmt: skip


def reply_for(protocol: str, raw: str) -> dict:
    if protocol == "anthropic-messages":
        return {"content": [{"type": "text", "text": "x"}], "stop_reason": raw, "usage": {}}
    if protocol == "openai-completions":
        return {"choices": [{"text": "x", "finish_reason": raw}]}
    return {"choices": [{"message": {"role": "assistant", "content": "x"}, "finish_reason": raw}]}


@pytest.mark.parametrize(
    "protocol, raw, unified", [(p, r, u) for p, rows in FINISHES.items() for r, u in rows]
)
def test_every_protocols_finish_reasons_map_to_the_unified_ones(protocol, raw, unified):
    config = LLMConfig(endpoint="http://h/v1", protocol=protocol, model_id="m")
    completion = adapter_for(protocol).read(reply_for(protocol, raw), config, None)
    assert (completion.finish.reason, completion.finish.raw) == (unified, raw)


def test_an_anthropic_tool_use_reads_as_tool_calls_and_a_bare_stop_with_calls_too():
    from integrations.llm.wires import openai_chat

    reply = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}]}, "finish_reason": "stop"}]}  # fmt: skip
    completion = openai_chat.read_reply(reply)
    assert completion.finish.reason == "tool_calls"  # it called a tool, then said "stop"
    assert completion.message.tool_calls[0].arguments == "{}"  # "" is an empty object


@pytest.mark.parametrize("protocol", ["openai-chat", "anthropic-messages"])
def test_a_stream_cut_without_a_finish_is_reported_as_cut(
    protocol, console_server, make_integration, bob, upstream
):
    make_integration(protocol=protocol, secret_header=None)
    if protocol == "openai-chat":
        upstream.handler = reply_sse(["one ", "two ", "three"], break_after=2)
    else:

        def cut(rec, h):  # an Anthropic stream that stops after its first text delta
            h.send_response(200)
            h.send_header("Content-Type", "text/event-stream")
            h.end_headers()
            for event in (
                {"type": "message_start", "message": {"usage": {"input_tokens": 3}}},
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "one "},
                },
            ):
                h.wfile.write(f"data: {__import__('json').dumps(event)}\n\n".encode())
            h.close_connection = True

        upstream.handler = cut
    _, raw = keys.create(bob, "app")
    chunks = []
    with pytest.raises(openai.APIError) as broken:
        for chunk in sdk(console_server, raw, max_retries=0).chat.completions.create(
            model="Model A", messages=HI, stream=True
        ):
            chunks.append(chunk)
    assert "cut short" in str(broken.value)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("one")
    assert all(c.choices[0].finish_reason in (None,) for c in chunks if c.choices)


def test_an_upstream_400_is_the_callers_bad_request_and_is_not_retried(
    console_server, make_integration, bob, upstream
):
    make_integration(secret_header=None)
    upstream.handler = reply_json(
        {"error": {"message": "This model's maximum context length is 4096 tokens."}}, status=400
    )
    _, raw = keys.create(bob, "app")
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(console_server, raw, max_retries=2).chat.completions.create(
            model="Model A", messages=HI
        )
    assert refused.value.code == "context_length_exceeded"
    assert "maximum context length is 4096" in refused.value.message
    assert len(upstream.requests) == 1  # a 400 is not retried


def test_an_upstream_that_refuses_the_consoles_key_is_a_502(
    console_server, make_integration, bob, upstream
):
    make_integration(secret_header=None)
    upstream.handler = reply_json({"error": {"message": "Incorrect API key"}}, status=401)
    _, raw = keys.create(bob, "app")
    with pytest.raises(openai.InternalServerError) as failed:
        sdk(console_server, raw, max_retries=0).chat.completions.create(
            model="Model A", messages=HI
        )
    assert failed.value.status_code == 502 and failed.value.code == "upstream_auth"


def test_estimated_usage_is_marked(console_server, make_integration, bob, upstream):
    make_integration(secret_header=None)
    upstream.handler = reply_json(openai_reply("pong", usage=False))
    _, raw = keys.create(bob, "app")
    response = httpx.post(
        f"{console_server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {raw}"},
        json={"model": "Model A", "messages": HI},
    )
    assert response.headers["X-Usage-Estimated"] == "true"
    assert response.json()["usage"]["estimated"] is True
    upstream.handler = reply_sse(["a ", "b"])
    chunks = list(sdk(console_server, raw).chat.completions.create(
        model="Model A", messages=HI, stream=True, stream_options={"include_usage": True}))  # fmt: skip
    assert chunks[-1].usage.model_extra.get("estimated") is True


def test_the_small_doors(console_server, make_integration, bob, upstream, settings):
    make_integration(secret_header=None)
    _, raw = keys.create(bob, "app")
    base = f"{console_server.url}/v1"
    detail = httpx.get(f"{base}/models/Model A", headers={"Authorization": f"Bearer {raw}"})
    assert detail.status_code == 200 and detail.json()["id"] == "Model A"
    assert httpx.get(f"{base}/models/nope", headers={"api-key": raw}).status_code == 404
    for header in ("api-key", "x-api-key"):
        answer = httpx.post(
            f"{base}/chat/completions",
            headers={header: raw},
            json={"model": "Model A", "messages": HI},
        )
        assert answer.status_code == 200, header
    # CORS: off by default; on for the origins named.
    origin = {"Origin": "https://app.example"}
    assert (
        "Access-Control-Allow-Origin"
        not in httpx.get(f"{base}/models", headers=origin | {"api-key": raw}).headers
    )
    settings.GATEWAY_CORS_ORIGINS = ["https://app.example"]
    preflight = httpx.options(
        f"{base}/chat/completions",
        headers=origin | {"Access-Control-Request-Method": "POST",
                          "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os"},
    )  # fmt: skip
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "x-stainless-os" in preflight.headers["Access-Control-Allow-Headers"]
    answer = httpx.post(
        f"{base}/chat/completions",
        headers=origin | {"api-key": raw},
        json={"model": "Model A", "messages": HI},
    )
    assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
    other = httpx.get(f"{base}/models", headers={"Origin": "https://evil.example", "api-key": raw})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_thinking_is_kept_with_its_signature_across_turns(
    console_server, make_integration, bob, upstream
):
    make_integration(protocol="anthropic-messages", secret_header=None)
    upstream.handler = anthropic_model
    _, raw = keys.create(bob, "app")
    client = sdk(console_server, raw, max_retries=0)
    first = client.chat.completions.create(
        model="Model A", messages=HI, reasoning_effort="low", max_tokens=100
    )
    message = first.choices[0].message
    blocks = message.model_extra["thinking_blocks"]
    assert message.model_extra["reasoning_content"].startswith("The user asks")
    assert blocks[0]["signature"].startswith("sig-")
    sent = upstream.requests[-1].json()
    assert (
        sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
        and sent["max_tokens"] >= 2048
    )
    # The next turn sends the thinking back unchanged (the fake checks the signature).
    history = HI + [message.model_dump(exclude_none=True), {"role": "user", "content": "And?"}]
    second = client.chat.completions.create(
        model="Model A", messages=history, reasoning_effort="low"
    )
    assert second.choices[0].message.content == "Echo: And?"
    assistant = upstream.requests[-1].json()["messages"][1]
    assert assistant["content"][0]["type"] == "thinking"
