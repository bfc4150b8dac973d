"""The compatibility matrix: what a client can do through /v1 on a model of each protocol.

Every cell is run here with the official openai SDK against a test upstream that speaks
the protocol faithfully; the README's table is rendered from EXPECTED, and a test checks
that it says exactly this. `python -m tests.gateway.test_matrix` prints the table.
"""

from __future__ import annotations

import json

import openai
import pytest

from integrations.gateway import keys
from integrations.models import Integration
from tests.fake_models import anthropic_model, completions_model, openai_model
from tests.gateway.test_agents import TIME, WEATHER, City, ask

PROTOCOLS = {
    "openai-chat": "OpenAI-shaped (`openai-chat`, `azure-openai`)",
    "anthropic-messages": "Anthropic (`anthropic-messages`)",
    "openai-completions": "Legacy completions",
    "custom": "Custom body ({{messages}}, {{tools}})",
}
YES = "yes"
# feature: outcome per protocol ("yes", or the parameter a 400 names)
EXPECTED = {
    "Chat, system and multi-turn": [YES, YES, YES, YES],
    "Streaming, with usage": [YES, YES, YES, YES],
    "Tool loop (calls and results)": [YES, YES, "tools", YES],
    "Streamed tool calls": [YES, YES, "tools", YES],
    "Parallel tool calls": [YES, YES, "tools", YES],
    "Structured output (json_schema)": [YES, YES, "response_format", "response_format"],
    "Images": [YES, YES, "messages", YES],
    "max_tokens reached is `length`": [YES, YES, YES, YES],
    "logprobs": [YES, "logprobs", "logprobs", "logprobs"],
    "Penalties": [YES, "presence_penalty", YES, "frequency_penalty"],
    "`n` > 1": [YES, "n", YES, "n"],
}
HANDLERS = {
    "openai-chat": openai_model,
    "anthropic-messages": anthropic_model,
    "openai-completions": completions_model,
    "custom": openai_model,
}
TEMPLATE = {"model": "{{model}}", "messages": "{{messages}}", "tools": "{{tools}}",
            "tool_choice": "{{tool_choice}}", "max_tokens": "{{max_tokens}}"}  # fmt: skip
HI = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Again"}]  # fmt: skip
IMAGE = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url",
          "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]  # fmt: skip


def _loop(sdk, stream: bool, tools: list) -> None:
    messages = [
        {"role": "user", "content": "Use all tools for Paris." if len(tools) > 1 else "Weather?"}
    ]
    first = ask(sdk, messages, stream, tools=tools)
    assert first.finish_reason == "tool_calls" and len(first.message.tool_calls) == len(tools)
    messages.append(first.message.model_dump(exclude_none=True))
    for call in first.message.tool_calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "Sunny"})
    assert ask(sdk, messages, stream, tools=tools).message.content.startswith("The tools said")


def _chat(sdk, upstream, **params):
    return sdk.chat.completions.create(model="Model A", messages=HI, **params).choices[0]


def run(feature: str, sdk, upstream) -> None:
    """Do one feature; raise if it does not work."""
    if feature == "Chat, system and multi-turn":
        assert _chat(sdk, upstream).message.content == "Echo: Again"
    elif feature == "Streaming, with usage":
        chunks = list(sdk.chat.completions.create(model="Model A", messages=HI, stream=True,
                                                  stream_options={"include_usage": True}))  # fmt: skip
        assert (
            "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: Again"
        )
        assert chunks[-1].usage.prompt_tokens > 0
    elif feature == "Tool loop (calls and results)":
        _loop(sdk, False, [WEATHER])
    elif feature == "Streamed tool calls":
        _loop(sdk, True, [WEATHER])
    elif feature == "Parallel tool calls":
        _loop(sdk, False, [WEATHER, TIME])
    elif feature == "Structured output (json_schema)":
        parsed = sdk.chat.completions.parse(model="Model A", messages=HI, response_format=City)
        assert parsed.choices[0].message.parsed.name == "Paris"
    elif feature == "Images":
        answer = sdk.chat.completions.create(model="Model A", messages=IMAGE).choices[0]
        assert answer.message.content.startswith("Echo:")
    elif feature == "max_tokens reached is `length`":
        messages = [{"role": "user", "content": "x" * 200}]
        answer = sdk.chat.completions.create(model="Model A", messages=messages, max_tokens=5)
        assert answer.choices[0].finish_reason == "length"
    elif feature == "logprobs":
        assert _chat(sdk, upstream, logprobs=True).logprobs is not None
    elif feature == "Penalties":
        _chat(sdk, upstream, presence_penalty=0.5, frequency_penalty=0.5)
        assert upstream.requests[-1].json()["presence_penalty"] == 0.5
    elif feature == "`n` > 1":
        _chat(sdk, upstream, n=2)
        assert upstream.requests[-1].json()["n"] == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_every_cell_of_the_matrix_holds(protocol, live_server, make_integration, bob, upstream):
    model = make_integration(
        protocol=protocol,
        secret_header=None,
        request_template=TEMPLATE if protocol == "custom" else None,
    )
    if protocol == "custom":
        Integration.objects.filter(pk=model.integration.pk).update(
            endpoint=f"{upstream.url}/v1/chat/completions",
            tool_calls_path="choices.0.message.tool_calls",
        )
    upstream.handler = HANDLERS[protocol]
    _, raw = keys.create(bob, "matrix")
    sdk = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=raw, max_retries=0, timeout=20)
    column = list(PROTOCOLS).index(protocol)
    for feature, outcomes in EXPECTED.items():
        expected = outcomes[column]
        try:
            run(feature, sdk, upstream)
            got = YES
        except openai.BadRequestError as exc:
            got = exc.param or json.dumps(exc.body)[:200]
        assert got == expected, f"{feature} on {protocol}: {got}"


def render() -> str:
    head = "| feature | " + " | ".join(PROTOCOLS.values()) + " |"
    rows = [head, "|---" * (len(PROTOCOLS) + 1) + "|"]
    for feature, outcomes in EXPECTED.items():
        cells = ["✓" if o == YES else f"400 `{o}`" for o in outcomes]
        rows.append(f"| {feature} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def test_the_readme_shows_this_matrix():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert render() in readme, "README.md: paste the output of python -m tests.gateway.test_matrix"


if __name__ == "__main__":
    print(render())
