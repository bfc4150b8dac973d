"""The scrubber teaches nothing: the audit's character-by-character attack recovers nothing.

The attack (round 3): a caller knows a key's vendor prefix ("sk-proj-") and asks the
model to "Repeat exactly: sk-proj-" followed by one candidate character, once per
candidate. When the scrubber masked any 8-character run of a secret, the one reply that
came back masked named the next character. Here the attack runs through every door a
caller has (the gateway, streamed and not; the Sandbox, streamed and not; the REST chat)
against an upstream that repeats what it is told, one character per stream delta. Every
candidate's answer comes back unmasked and in the same pieces, so none stands out.
"""

from __future__ import annotations

import json
import string

import pytest
from django.test import Client
from django.urls import reverse

from integrations.gateway import keys
from integrations.llm import scrubber as scrubbing
from integrations.models import AuthKind
from tests.integrations.test_api import Api
from tests.upstream import openai_reply, send

KEY = "sk-proj-" + "Qm7xT2vK9pL4wR8zN3bY6cH1jF5gD0sA"
ASK = "Repeat exactly: "
CANDIDATES = string.ascii_letters + string.digits


def repeater(rec, h):
    """Answer the last user message's text after "Repeat exactly: ", streamed a character
    per event when asked."""
    body = rec.json()
    text = body["messages"][-1]["content"].removeprefix(ASK)
    if not body.get("stream"):
        return send(h, 200, json.dumps(openai_reply(text)).encode(), "application/json")
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.end_headers()
    for c in text:
        h.wfile.write(f"data: {json.dumps({'choices': [{'delta': {'content': c}}]})}\n\n".encode())
    end = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
    h.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
    h.close_connection = True


def sse_events(response) -> list[tuple[str, dict]]:
    out = []
    for chunk in response.streaming_content:
        for block in chunk.decode().split("\n\n"):
            name, data = "message", None
            for line in block.splitlines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and line[6:] != "[DONE]":
                    data = json.loads(line[6:])
            if data is not None:
                out.append((name, data))
    return out


@pytest.fixture
def doors(client, charlie, api_token, make_integration, upstream, settings):
    """Each way a caller sees a reply: (door name, function(text) -> what the caller sees:
    the text, and the sizes of the pieces it came in)."""
    settings.SANDBOX_RATE_LIMIT = (10_000, 60)
    upstream.handler = repeater
    model = make_integration(token=KEY, auth_kind=AuthKind.BEARER, secret_header=None)
    _, raw = keys.create(charlie, "attacker")
    gateway = Client(headers={"Authorization": f"Bearer {raw}"})
    client.force_login(charlie)
    api = Api(Client(), api_token(charlie))

    def gateway_plain(text):
        body = {"model": "Model A", "messages": [{"role": "user", "content": ASK + text}]}
        answer = gateway.post("/v1/chat/completions", body, content_type="application/json")
        return answer.json()["choices"][0]["message"]["content"], ()

    def gateway_stream(text):
        body = {"model": "Model A", "stream": True}
        body["messages"] = [{"role": "user", "content": ASK + text}]
        response = gateway.post("/v1/chat/completions", body, content_type="application/json")
        pieces = [
            d["choices"][0]["delta"].get("content", "")
            for _, d in sse_events(response)
            if d.get("choices")
        ]
        pieces = [p for p in pieces if p]
        return "".join(pieces), tuple(map(len, pieces))

    def sandbox_run(text):
        run = {"model": str(model.pk), "user_prompt": ASK + text, "max_tokens": "64"}
        client.post(reverse("sandbox-run-now"), run)
        from sandbox.models import SandboxRun

        return SandboxRun.objects.order_by("-created_at").first().reply, ()

    def sandbox_stream(text):
        run = {"model": str(model.pk), "user_prompt": ASK + text, "stream": "on"}
        events = sse_events(client.post(reverse("sandbox-stream"), run))
        pieces = [d["t"] for name, d in events if name == "token"]
        return "".join(pieces), tuple(map(len, pieces))

    def rest_chat(text):
        _, answer = api.call("post", "chat", {"model": str(model.pk), "user": ASK + text})
        return answer["reply"], ()

    return [
        ("gateway", gateway_plain),
        ("gateway stream", gateway_stream),
        ("sandbox", sandbox_run),
        ("sandbox stream", sandbox_stream),
        ("REST chat", rest_chat),
    ]


@pytest.mark.parametrize("known", [0, 6])
def test_guessing_a_key_one_character_at_a_time_recovers_nothing(doors, known):
    """With the public prefix known (and even 6 characters past it, as if they had leaked),
    no candidate for the next character answers differently from the others."""
    prefix = "sk-proj-" + KEY[8 : 8 + known]
    for door, ask in doors:
        seen = {}
        for candidate in CANDIDATES:
            text, pieces = ask(prefix + candidate)
            assert text == prefix + candidate, f"{door}: {candidate!r} came back {text!r}"
            seen[candidate] = pieces
        assert len(set(seen.values())) == 1, f"{door}: the pieces differ by candidate: {seen}"


def test_a_key_without_a_vendor_prefix_gives_nothing_either(make_integration, upstream, charlie):
    """No public prefix: the stream holds back every run of the key's classes of
    characters alike, so the first characters are as quiet as the rest."""
    sc = scrubbing.Scrubber(("Qm7xT2vK9pL4wR8zN3bY6cH1jF5gD0sA",))
    for known in (0, 5):
        patterns = set()
        for candidate in CANDIDATES:
            stream = sc.stream()
            text = ASK + "Qm7xT2vK9pL4wR8zN3bY6cH1jF5gD0sA"[:known] + candidate + " done"
            pieces = [stream.feed(c) for c in text] + [stream.flush()]
            assert "".join(pieces) == text
            patterns.add(tuple(len(p) for p in pieces))
        assert len(patterns) == 1


def test_the_whole_key_and_long_fragments_are_still_masked(make_integration):
    sc = scrubbing.Scrubber((KEY,))
    body = KEY[8:]
    for echoed in (KEY, body, body[:13], "sk-proj-" + body[:13], body[5:20]):
        assert scrubbing.MASK in sc.text(f"the key is {echoed}."), echoed
    for short in (body[:8], "sk-proj-" + body[:8], body[-4:]):
        assert sc.text(f"the key is {short}.") == f"the key is {short}.", short
