"""Custom request bodies carry the conversation, tools where they map them, and never
silently replace what the person asked.

Before, a body with a literal message passed Test, was saved, and then the Sandbox and
/v1 answered that literal instead of the user's question.
"""

from __future__ import annotations

import json

import openai
import pytest
from django.urls import reverse

from integrations.gateway import keys
from integrations.models import Integration
from tests.fake_models import openai_model
from tests.gateway.test_agents import WEATHER, ask
from tests.integrations.test_api import Api
from tests.integrations.test_connection_views import HX, add_payload

LITERAL = json.dumps({"model": "{{model}}", "messages": [{"role": "user", "content": "Say hi"}]})


@pytest.mark.django_db
def test_a_body_without_the_conversation_is_refused_at_test_and_save(client, bob, upstream):
    client.force_login(bob)
    for action in ("test", "save", "draft"):
        data = add_payload(upstream, request_template=LITERAL, action=action)
        html = client.post(reverse("integration-add"), data, headers=HX).content.decode()
        assert "carries no part of the conversation" in html, action
    assert upstream.requests == [] and not Integration.objects.exists()


@pytest.mark.django_db
def test_a_body_without_the_conversation_is_refused_by_the_api(client, bob, api_token, upstream):
    api = Api(client, api_token(bob))
    model = {"name": "m", "model_id": "m", "request_template": json.loads(LITERAL)}
    payload = {
        "name": "Lit",
        "endpoint": f"{upstream.url}/v1",
        "protocol": "custom",
        "models": [model],
    }
    status, body = api.call("post", "integrations", payload)
    assert status == 422 and "request_template" in body["message"]
    assert "conversation" in body["message"] and upstream.requests == []


@pytest.mark.django_db
def test_the_test_message_is_the_persons_to_set(client, bob, upstream):
    client.force_login(bob)
    data = add_payload(upstream, test_prompt="What is 2+2?", action="test")
    client.post(reverse("integration-add"), data, headers=HX)
    assert upstream.requests[-1].json()["messages"][-1]["content"] == "What is 2+2?"


@pytest.mark.django_db(transaction=True)
def test_a_custom_body_that_maps_tools_runs_a_tool_loop(
    console_server, make_integration, bob, upstream
):
    template = {"model": "{{model}}", "messages": "{{messages}}", "tools": "{{tools}}",
                "tool_choice": "{{tool_choice}}", "max_tokens": "{{max_tokens}}"}  # fmt: skip
    model = make_integration(protocol="custom", secret_header=None, request_template=template)
    Integration.objects.filter(pk=model.integration.pk).update(
        endpoint=f"{upstream.url}/v1/chat/completions",
        tool_calls_path="choices.0.message.tool_calls",
    )
    upstream.handler = openai_model
    _, raw = keys.create(bob, "agent")
    sdk = openai.OpenAI(base_url=f"{console_server.url}/v1", api_key=raw, max_retries=0)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = ask(sdk, messages, False, tools=[WEATHER])
    (call,) = first.message.tool_calls
    assert first.finish_reason == "tool_calls" and json.loads(call.function.arguments) == {
        "city": "Paris"
    }
    messages += [first.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "Rain"}]  # fmt: skip
    assert ask(sdk, messages, True, tools=[WEATHER]).message.content == "The tools said: Rain"


@pytest.mark.django_db(transaction=True)
def test_a_body_without_tools_refuses_them_by_name(console_server, make_integration, bob, upstream):
    make_integration(protocol="custom", secret_header=None,
                     request_template={"model": "{{model}}", "messages": "{{messages}}"})  # fmt: skip
    _, raw = keys.create(bob, "agent")
    sdk = openai.OpenAI(base_url=f"{console_server.url}/v1", api_key=raw, max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        ask(sdk, [{"role": "user", "content": "x"}], False, tools=[WEATHER])
    assert refused.value.param == "tools" and "{{tools}}" in refused.value.message
    assert upstream.requests == []
