"""/v1/messages: the official anthropic SDK against the gateway, on a model behind an
Anthropic upstream (the body forwarded) and one behind an OpenAI-shaped upstream (the
conversation translated), both test servers that speak their API faithfully.

Before, Anthropic's SDK and Claude Code got 404 `unknown_url` here.
"""

from __future__ import annotations

import base64

import anthropic
import httpx
import pytest

from integrations.gateway import keys
from integrations.models import UsageRecord
from tests.conftest import CANARY
from tests.fake_models import anthropic_model, openai_model
from tests.gateway.test_gateway import usage_rows

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
UPSTREAMS = {
    "anthropic": ("anthropic-messages", anthropic_model),
    "openai": ("openai-chat", openai_model),
}
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


@pytest.fixture(params=list(UPSTREAMS))
def claude(request, console_server, make_integration, bob, upstream):
    """An anthropic SDK client on a model of each protocol."""
    protocol, handler = UPSTREAMS[request.param]
    make_integration(protocol=protocol, secret_header=None)
    upstream.handler = handler
    _, raw = keys.create(bob, "claude")
    sdk = anthropic.Anthropic(base_url=console_server.url, api_key=raw, max_retries=0, timeout=20)
    sdk.kind, sdk.raw_key, sdk.url = request.param, raw, console_server.url
    return sdk


def final(sdk, stream: bool, **params):
    params.setdefault("model", "Model A")
    params.setdefault("max_tokens", 400)
    if not stream:
        return sdk.messages.create(**params)
    with sdk.messages.stream(**params) as events:
        return events.get_final_message()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_message_answers_in_anthropic_shape(claude, stream):
    message = final(claude, stream, messages=[{"role": "user", "content": "Hello there"}])
    assert message.type == "message" and message.role == "assistant"
    assert message.model == "Model A"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Echo: Hello there"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    (row,) = usage_rows(1)
    assert row.door == "anthropic-messages" and row.ok and row.streamed is stream
    assert (row.prompt_tokens, row.completion_tokens) == (
        message.usage.input_tokens,
        message.usage.output_tokens,
    )


def test_a_stream_comes_in_anthropic_event_order(claude):
    with claude.messages.stream(
        model="Model A",
        max_tokens=400,
        system=[{"type": "text", "text": "Be brief."}],
        messages=[{"role": "user", "content": "Count"}],
    ) as events:
        kinds = [e.type for e in events if e.type not in ("text",)]
    assert kinds[0] == "message_start"
    assert kinds[1] == "content_block_start"
    assert "content_block_delta" in kinds
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_two_turn_tool_loop_completes(claude, stream, upstream):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = final(claude, stream, messages=messages, tools=[WEATHER])
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    messages.append({"role": "assistant", "content": [b.model_dump() for b in first.content]})
    messages.append(
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21 C"}],
        }
    )
    second = final(claude, stream, messages=messages, tools=[WEATHER])
    assert second.stop_reason == "end_turn"
    assert second.content[-1].text == "The tools said: Sunny, 21 C"
    sent = upstream.requests[-1].json()
    if claude.kind == "openai":  # translated: tool_calls and a tool message
        assert sent["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
        assert sent["messages"][2] == {
            "role": "tool",
            "tool_call_id": use.id,
            "content": "Sunny, 21 C",
        }
    else:  # forwarded as the caller sent it, the model name replaced
        assert sent["messages"] == messages and sent["model"] == "test-model"


def test_a_forced_tool_choice_reaches_either_upstream(claude):
    message = final(
        claude,
        False,
        messages=[{"role": "user", "content": "Hi"}],
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    assert [b.type for b in message.content][-1] == "tool_use"
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_an_image_reaches_the_model(claude, stream, upstream):
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "What is this?"},
    ]
    message = final(claude, stream, messages=[{"role": "user", "content": content}])
    assert message.content[0].text == "Echo: [image] What is this?"
    sent = upstream.requests[-1].json()["messages"][0]["content"]
    if claude.kind == "openai":
        assert sent[0]["image_url"]["url"] == f"data:image/png;base64,{PNG}"
    else:
        assert sent[0]["source"]["data"] == PNG


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_thinking_is_kept_across_turns_with_an_anthropic_upstream(claude, stream, upstream):
    if claude.kind != "anthropic":
        pytest.skip("signed thinking is Anthropic's")
    params = {"thinking": {"type": "enabled", "budget_tokens": 2048}, "tools": [WEATHER]}
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = final(claude, stream, messages=messages, max_tokens=4096, **params)
    thinking = first.content[0]
    assert thinking.type == "thinking" and thinking.signature.startswith("sig-")
    messages.append({"role": "assistant", "content": [b.model_dump() for b in first.content]})
    use = first.content[-1]
    messages.append(
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Rain"}],
        }
    )
    # The fake upstream refuses a thinking block whose signature does not match its text.
    second = final(claude, stream, messages=messages, max_tokens=4096, **params)
    assert second.content[-1].text == "The tools said: Rain"


def test_thinking_becomes_a_reasoning_effort_for_an_openai_upstream(claude, upstream):
    if claude.kind != "openai":
        pytest.skip("translation only")
    final(
        claude,
        False,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=9000,
        thinking={"type": "enabled", "budget_tokens": 8000},
    )
    assert upstream.requests[-1].json()["reasoning_effort"] == "medium"


def test_count_tokens_is_the_upstreams_count_or_a_marked_estimate(claude):
    raw = claude.messages.with_raw_response.count_tokens(
        model="Model A", messages=[{"role": "user", "content": "How many tokens is this?"}]
    )
    counted = raw.parse()
    if claude.kind == "anthropic":  # the fake counts 100 more than any estimate would
        assert counted.input_tokens > 100 and raw.headers.get("x-usage-estimated") is None
    else:
        assert 0 < counted.input_tokens < 100
        assert raw.headers["x-usage-estimated"] == "true"
        assert raw.http_response.json()["estimated"] is True
    assert not UsageRecord.objects.exists()  # nothing was generated


def test_max_tokens_becomes_max_tokens(claude):
    message = final(
        claude, False, max_tokens=2, messages=[{"role": "user", "content": "A long question"}]
    )
    assert message.stop_reason == "max_tokens"


def test_errors_come_in_anthropics_shape(claude):
    bad = anthropic.Anthropic(base_url=claude.url, api_key="sk-byo-nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        bad.messages.create(
            model="Model A", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError) as caught:
        final(claude, False, model="nope", messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["error"]["type"] == "not_found_error"
    reply = httpx.post(
        f"{claude.url}/v1/messages",
        headers={"x-api-key": claude.raw_key, "anthropic-version": "2023-06-01"},
        json={"model": "Model A", "messages": [{"role": "user", "content": "x"}]},
    )
    assert reply.status_code == 400
    assert reply.json() == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "max_tokens: `max_tokens` is required.",
        },
    }


def test_a_key_limited_to_one_call_a_minute_gets_a_rate_limit_error(claude, bob):
    _, raw = keys.create(bob, "slow", rpm=1)
    sdk = anthropic.Anthropic(base_url=claude.url, api_key=raw, max_retries=0)
    final(sdk, False, messages=[{"role": "user", "content": "one"}])
    with pytest.raises(anthropic.RateLimitError) as caught:
        final(sdk, False, messages=[{"role": "user", "content": "two"}])
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert caught.value.response.headers["retry-after"]


def test_a_key_scoped_to_another_model_cannot_use_this_one(claude, bob, make_integration):
    other = make_integration(name="Other", name_suffix="B")
    _, raw = keys.create(bob, "scoped", allowed=[other])
    sdk = anthropic.Anthropic(base_url=claude.url, api_key=raw, max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        final(sdk, False, messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_secret_the_upstream_echoes_is_scrubbed(claude, stream):
    message = final(claude, stream, messages=[{"role": "user", "content": f"say {CANARY}"}])
    text = message.content[0].text
    assert CANARY not in text and text.startswith("Echo: say ")


def test_a_signed_thinking_block_whose_text_was_masked_loses_its_signature(claude):
    """The fake thinks aloud about the question; a question holding the key makes the
    thinking hold it too. Masked, its signature would be a lie: it is dropped."""
    if claude.kind != "anthropic":
        pytest.skip("signed thinking is Anthropic's")
    for stream in (False, True):
        message = final(
            claude,
            stream,
            max_tokens=4096,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[{"role": "user", "content": f"say {CANARY}"}],
        )
        thinking = message.content[0]
        assert CANARY not in thinking.thinking and thinking.thinking.startswith(
            "The user asks: say "
        )
        assert thinking.signature == ""


def slow_anthropic(rec, h):
    """An Anthropic upstream that thinks for a while between its first event and its text."""
    import time

    from tests.fake_models import _sse, _start_stream

    _start_stream(h)
    message = {"id": "msg_slow", "type": "message", "role": "assistant", "model": "m",
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 5, "output_tokens": 1}}  # fmt: skip
    _sse(h, {"type": "message_start", "message": message}, "message_start")
    time.sleep(0.7)
    _sse(h, {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, "content_block_start")  # fmt: skip
    _sse(h, {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Done."}}, "content_block_delta")  # fmt: skip
    _sse(h, {"type": "content_block_stop", "index": 0}, "content_block_stop")
    _sse(h, {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}, "message_delta")  # fmt: skip
    _sse(h, {"type": "message_stop"}, "message_stop")


def test_a_quiet_upstream_gets_pings_to_the_caller(
    asgi_server, make_integration, bob, upstream, settings
):
    settings.GATEWAY_KEEPALIVE_SECONDS = 0.2
    make_integration(protocol="anthropic-messages", secret_header=None)
    upstream.handler = slow_anthropic
    _, raw = keys.create(bob, "pinged")
    reply = httpx.post(
        f"{asgi_server.url}/v1/messages",
        headers={"x-api-key": raw, "anthropic-version": "2023-06-01"},
        json={"model": "Model A", "max_tokens": 50, "stream": True,
              "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )  # fmt: skip
    kinds = [line[7:] for line in reply.text.splitlines() if line.startswith("event: ")]
    # The SDK skips pings; what it builds is the upstream's answer.
    waiting = kinds[1 : kinds.index("content_block_start")]
    assert len(waiting) >= 2 and set(waiting) == {"ping"}
    assert kinds[-1] == "message_stop" and '"Done."' in reply.text
