"""Agents work through the gateway: the official openai SDK completes tool loops, streamed
and not, against an OpenAI-shaped upstream and an Anthropic upstream (test servers that
speak each API faithfully, streamed tool-call deltas included), and gets structured
output through both.

Before, every framework's loop failed on its second turn ("Assistant tool calls in the
history are not supported") or its first ("Streaming with tools is not supported yet"),
and Anthropic models refused tools outright.
"""

from __future__ import annotations

import json

import openai
import pytest
from pydantic import BaseModel

from integrations.gateway import keys
from tests.conftest import CANARY
from tests.fake_models import anthropic_model, openai_model

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}
UPSTREAMS = {
    "openai": ("openai-chat", openai_model),
    "anthropic": ("anthropic-messages", anthropic_model),
}


@pytest.fixture(params=list(UPSTREAMS))
def agent(request, console_server, make_integration, bob, upstream):
    """An openai SDK client on a model of each protocol."""
    protocol, handler = UPSTREAMS[request.param]
    make_integration(protocol=protocol, secret_header=None)
    upstream.handler = handler
    _, raw = keys.create(bob, "agent")
    sdk = openai.OpenAI(base_url=f"{console_server.url}/v1", api_key=raw, max_retries=0, timeout=20)
    sdk.kind = request.param
    return sdk


def ask(sdk, messages, stream: bool, **params):
    """One turn as an agent framework takes it; streamed through the SDK's own
    accumulation of chunks (tool-call deltas included)."""
    if not stream:
        return sdk.chat.completions.create(model="Model A", messages=messages, **params).choices[0]
    with sdk.chat.completions.stream(model="Model A", messages=messages, **params) as events:
        return events.get_final_completion().choices[0]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_two_turn_tool_loop_completes(agent, stream, upstream):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = ask(agent, messages, stream, tools=[WEATHER])
    assert first.finish_reason == "tool_calls"
    (call,) = first.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {
        "city": "Paris"
    }
    messages.append(first.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"})
    second = ask(agent, messages, stream, tools=[WEATHER])
    assert second.finish_reason == "stop"
    assert second.message.content == "The tools said: Sunny, 21 C"
    if agent.kind == "anthropic":  # the history went as tool_use and tool_result blocks
        sent = upstream.requests[-1].json()["messages"]
        assert [b["type"] for b in sent[1]["content"]] == ["tool_use"]
        assert sent[2]["content"][0]["type"] == "tool_result"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_parallel_tool_calls_and_their_results_go_back_together(agent, stream, upstream):
    messages = [{"role": "user", "content": "Use all tools for Paris."}]
    first = ask(agent, messages, stream, tools=[WEATHER, TIME])
    calls = first.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    messages.append(first.message.model_dump(exclude_none=True))
    for call, answer in zip(calls, ["Sunny", "Noon"], strict=True):
        messages.append({"role": "tool", "tool_call_id": call.id, "content": answer})
    second = ask(agent, messages, stream, tools=[WEATHER, TIME])
    assert second.message.content == "The tools said: Sunny; Noon"
    if agent.kind == "anthropic":  # both results in one user turn (the fake checks order)
        sent = upstream.requests[-1].json()["messages"]
        assert [b["type"] for b in sent[-1]["content"]] == ["tool_result", "tool_result"]


class City(BaseModel):
    name: str
    population: int
    capital: bool


def test_structured_output_is_schema_valid_json(agent):
    parsed = agent.chat.completions.parse(
        model="Model A",
        messages=[{"role": "user", "content": "A city, as JSON."}],
        response_format=City,
    )
    city = parsed.choices[0].message.parsed
    assert city == City(name="Paris", population=21, capital=True)
    assert parsed.choices[0].finish_reason == "stop"


def test_tool_choice_none_and_empty_tools_are_accepted(agent):
    answer = ask(
        agent, [{"role": "user", "content": "Hi"}], False, tools=[WEATHER], tool_choice="none"
    )
    assert answer.message.content == "Echo: Hi" and not answer.message.tool_calls
    answer = agent.chat.completions.create(
        model="Model A", messages=[{"role": "user", "content": "Hi"}], tools=[], seed=7,
        response_format={"type": "text"},
    )  # fmt: skip
    assert answer.choices[0].message.content == "Echo: Hi"


def test_max_tokens_becomes_length(agent):
    answer = agent.chat.completions.create(
        model="Model A", messages=[{"role": "user", "content": "x" * 200}], max_tokens=5
    )
    assert answer.choices[0].finish_reason == "length"


def test_a_secret_echoed_in_tool_arguments_is_masked(
    console_server, make_integration, bob, upstream
):
    from tests.upstream import openai_reply, send

    make_integration(secret_header=None)

    def leaky(rec, h):
        call = {
            "id": "c1",
            "type": "function",
            "function": {"name": "f", "arguments": json.dumps({"key": CANARY})},
        }
        if rec.json().get("stream"):
            h.send_response(200)
            h.send_header("Content-Type", "text/event-stream")
            h.end_headers()
            args = call["function"]["arguments"]
            first = {
                "index": 0,
                "id": "c1",
                "type": "function",
                "function": {"name": "f", "arguments": ""},
            }
            for delta in [{"tool_calls": [first]}] + [
                {"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 3]}}]}
                for i in range(0, len(args), 3)
            ]:
                h.wfile.write(
                    f"data: {json.dumps({'choices': [{'index': 0, 'delta': delta}]})}\n\n".encode()
                )
            end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
            h.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
            h.close_connection = True
            return
        reply = openai_reply("")
        reply["choices"][0]["message"] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [call],
        }
        send(h, 200, json.dumps(reply).encode(), "application/json")

    upstream.handler = leaky
    _, raw = keys.create(bob, "agent")
    sdk = openai.OpenAI(base_url=f"{console_server.url}/v1", api_key=raw, max_retries=0)
    for stream in (False, True):
        choice = ask(sdk, [{"role": "user", "content": "x"}], stream, tools=[WEATHER])
        arguments = choice.message.tool_calls[0].function.arguments
        assert CANARY not in arguments and "••••" in arguments
