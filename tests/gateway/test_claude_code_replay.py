"""A recorded Claude Code session (tests/gateway/recorded/claude_code_session.json) replayed
against the gateway as Claude Code sends it: its headers, its `?beta=true` paths, system
blocks with cache_control, a streamed turn that calls a tool and the turn that sends the
result back. Run against an Anthropic upstream (forwarded) and an OpenAI-shaped one
(translated).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import httpx
import pytest

from integrations.gateway import keys
from tests.fake_models import anthropic_model, openai_model

pytestmark = pytest.mark.django_db(transaction=True)

SESSION = json.loads((Path(__file__).parent / "recorded" / "claude_code_session.json").read_text())
UPSTREAMS = {
    "anthropic": ("anthropic-messages", anthropic_model),
    "openai": ("openai-chat", openai_model),
}


def events_of(reply: httpx.Response) -> list[tuple[str, dict]]:
    """(event name, data) for each server-sent event, as Claude Code's parser reads them."""
    out = []
    for block in reply.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            data = json.loads(lines["data"])
            assert lines.get("event") == data["type"]  # the event line names the data's type
            out.append((lines["event"], data))
    return out


def message_of(events: list[tuple[str, dict]]) -> dict:
    """The assistant message the events build, block by block."""
    message: dict = {}
    for name, data in events:
        if name == "message_start":
            message = dict(data["message"], content=[])
        elif name == "content_block_start":
            assert data["index"] == len(message["content"])  # blocks come in order
            message["content"].append(dict(data["content_block"], _json=""))
        elif name == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                block["_json"] += delta["partial_json"]
        elif name == "message_delta":
            message["stop_reason"] = data["delta"]["stop_reason"]
            message["usage"] = data["usage"]
    for block in message["content"]:
        raw = block.pop("_json")
        if block["type"] == "tool_use":
            block["input"] = json.loads(raw or "{}")
    return message


@pytest.mark.parametrize("kind", list(UPSTREAMS))
def test_a_claude_code_session_completes(kind, console_server, make_integration, bob, upstream):
    protocol, handler = UPSTREAMS[kind]
    make_integration(protocol=protocol, secret_header=None, name="Claude")
    upstream.handler = handler
    _, raw = keys.create(bob, "claude code")
    headers = dict(SESSION["headers"], **{"x-api-key": raw})
    http = httpx.Client(base_url=console_server.url, headers=headers, timeout=20)
    models, counted, first, second = SESSION["steps"]

    listing = http.get(models["path"]).json()
    assert listing["has_more"] is False and listing["first_id"] == "Model A"
    assert listing["data"][0]["type"] == "model" and listing["data"][0]["created_at"].endswith("Z")

    body = json.loads(json.dumps(counted["body"]).replace("MODEL", "Model A"))
    assert http.post(counted["path"], json=body).json()["input_tokens"] > 0

    body = json.loads(json.dumps(first["body"]).replace("MODEL", "Model A"))
    reply = http.post(first["path"], json=body)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith(
        "text/event-stream"
    )
    events = events_of(reply)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert "ping" in names
    assert any(
        d["delta"]["type"] == "input_json_delta" for n, d in events if n == "content_block_delta"
    )
    assistant = message_of(events)
    assert assistant["stop_reason"] == "tool_use" and assistant["model"] == "Model A"
    (use,) = [b for b in assistant["content"] if b["type"] == "tool_use"]
    assert use["name"] == "Bash" and set(use["input"]) == {"command", "timeout"}
    sent = upstream.requests[-1]
    if kind == "anthropic":  # forwarded: Claude Code's betas and cache hints reach the upstream
        assert sent.headers["anthropic-beta"] == SESSION["headers"]["anthropic-beta"]
        assert sent.json()["system"] == body["system"] and sent.json()["model"] == "test-model"
    else:
        assert "anthropic-beta" not in {k.lower() for k in sent.headers}

    body = copy.deepcopy(second["body"])
    turn = {
        "role": "assistant",
        "content": [{k: v for k, v in b.items()} for b in assistant["content"]],
    }
    body["messages"][1] = turn
    body = json.loads(
        json.dumps(body).replace("MODEL", "Model A").replace("TOOL_USE_ID", use["id"])
    )
    events = events_of(http.post(second["path"], json=body))
    answer = message_of(events)
    assert answer["stop_reason"] == "end_turn"
    assert answer["content"][-1]["text"] == "The tools said: README.md\nmanage.py"
    assert answer["usage"]["output_tokens"] > 0
