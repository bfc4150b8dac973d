"""/v1/responses: the official openai SDK's Responses calls against the gateway, on models
behind an OpenAI-shaped upstream and an Anthropic upstream (faithful test servers).

Before, the Agents SDK, Codex and Vercel's provider got 404 here.
"""

from __future__ import annotations

import json

import openai
import pytest
from pydantic import BaseModel

from integrations.gateway import keys
from integrations.models import StoredResponse
from tests.conftest import CANARY
from tests.fake_models import anthropic_model, openai_model
from tests.gateway.test_gateway import usage_rows

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
UPSTREAMS = {
    "openai": ("openai-chat", openai_model),
    "anthropic": ("anthropic-messages", anthropic_model),
}


class Weather(BaseModel):
    city: str
    celsius: int


@pytest.fixture(params=list(UPSTREAMS))
def sdk(request, console_server, make_integration, bob, upstream):
    protocol, handler = UPSTREAMS[request.param]
    make_integration(protocol=protocol, secret_header=None)
    upstream.handler = handler
    key, raw = keys.create(bob, "agents")
    client = openai.OpenAI(
        base_url=f"{console_server.url}/v1", api_key=raw, max_retries=0, timeout=20
    )
    client.kind, client.key, client.url = request.param, key, console_server.url
    return client


def respond(sdk, stream: bool, **params):
    params.setdefault("model", "Model A")
    if not stream:
        return sdk.responses.create(**params)
    with sdk.responses.stream(**params) as events:
        return events.get_final_response()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_response_answers_in_the_responses_shape(sdk, stream):
    response = respond(sdk, stream, input="Hello there", instructions="Be brief.")
    assert response.object == "response" and response.status == "completed"
    assert response.id.startswith("resp_") and response.model == "Model A"
    assert response.output_text == "Echo: Hello there"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    (row,) = usage_rows(1)
    assert row.door == "responses" and row.ok and row.streamed is stream
    assert row.prompt_tokens == response.usage.input_tokens


def test_a_stream_comes_as_typed_events_in_order(sdk):
    with sdk.responses.stream(model="Model A", input="Count to three") as events:
        seen = list(events)
    kinds = [e.type for e in seen]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert "response.output_text.delta" in kinds
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    numbers = [e.sequence_number for e in seen]
    assert numbers == list(range(len(seen)))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_function_tool_round_trip_continues_from_the_previous_response(sdk, stream, upstream):
    first = respond(sdk, stream, input="What is the weather in Paris?", tools=[WEATHER])
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    second = respond(
        sdk,
        stream,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"}],
        tools=[WEATHER],
    )
    assert second.output_text == "The tools said: Sunny, 21 C"
    assert second.previous_response_id == first.id


def test_store_false_keeps_nothing_and_the_caller_sends_the_history(sdk):
    question = {"role": "user", "content": "What is the weather in Paris?"}
    first = respond(sdk, False, input=[question], tools=[WEATHER], store=False)
    assert not StoredResponse.objects.exists()
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError) as caught:
        respond(sdk, False, previous_response_id=first.id, input="and?")
    assert caught.value.code == "previous_response_not_found"
    (call,) = [item for item in first.output if item.type == "function_call"]
    history = [question, *[item.model_dump(exclude_none=True) for item in first.output]]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "Rain"})
    second = respond(sdk, False, input=history, tools=[WEATHER], store=False)
    assert second.output_text == "The tools said: Rain"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_text_format_gets_a_parsed_answer(sdk, stream):
    if stream:
        with sdk.responses.stream(model="Model A", input="Weather?", text_format=Weather) as events:
            parsed = events.get_final_response().output_parsed
    else:
        parsed = sdk.responses.parse(
            model="Model A", input="Weather?", text_format=Weather
        ).output_parsed
    assert parsed == Weather(city="Paris", celsius=21)


def test_built_in_tools_are_refused_by_name(sdk):
    with pytest.raises(openai.BadRequestError) as caught:
        respond(sdk, False, input="news?", tools=[{"type": "web_search"}])
    assert "web_search" in caught.value.message and caught.value.param == "tools[0].type"


def test_a_stored_response_is_fetched_and_deleted_by_its_key_only(sdk, bob):
    response = respond(sdk, False, input="Hello")
    assert sdk.responses.retrieve(response.id).output_text == "Echo: Hello"
    _, other = keys.create(bob, "other")
    stranger = openai.OpenAI(base_url=f"{sdk.url}/v1", api_key=other, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.delete(response.id)
    sdk.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)


def test_an_expired_response_is_gone(sdk, settings):
    settings.RESPONSES_RETENTION_DAYS = -1
    response = respond(sdk, False, input="Hello")
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_secret_the_upstream_echoes_is_scrubbed_and_not_stored(sdk, stream):
    response = respond(sdk, stream, input=f"say {CANARY}")
    assert CANARY not in response.output_text and response.output_text.startswith("Echo: say ")
    stored = StoredResponse.objects.get()
    assert CANARY not in json.dumps(stored.history) + json.dumps(stored.response)


def test_max_output_tokens_makes_an_incomplete_response(sdk):
    response = respond(sdk, False, input="A rather long question", max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"


def test_a_key_limited_to_one_call_a_minute_is_refused_the_second(sdk, bob):
    _, raw = keys.create(bob, "slow", rpm=1)
    slow = openai.OpenAI(base_url=f"{sdk.url}/v1", api_key=raw, max_retries=0)
    respond(slow, False, input="one")
    with pytest.raises(openai.RateLimitError):
        respond(slow, False, input="two")
