"""Opt-in stream resumption: a route's stream that breaks after its first token goes on
on the next target, and the caller (the official SDKs, WSGI and ASGI) reads one stream
whose text is the partial answer plus the continuation."""

from __future__ import annotations

import json

import pytest

from integrations.llm import continuation
from integrations.llm.chat import BlockDelta, BlockEnded, BlockStarted, Finish, Finished
from tests.gateway import failover
from tests.gateway.test_gateway import usage_rows
from tests.upstream import Upstream, reply_anthropic_sse, reply_sse

pytestmark = pytest.mark.django_db(transaction=True)

PARTIAL = ["The quick brown ", "fox jumps over the la"]


@pytest.fixture
def world(console_server, upstream, bob):
    backup = Upstream().start()
    world = failover.build(console_server.url, bob, upstream, backup)
    world.a.handler = reply_sse([*PARTIAL, "never sent"], break_after=2)
    yield world
    backup.stop()


def _continuing(words: list[str], seen: list):
    def handle(rec, h):
        seen.append(json.loads(rec.body))
        return reply_sse(words, usage={"prompt_tokens": 30, "completion_tokens": 4,
                                       "total_tokens": 34})(rec, h)  # fmt: skip

    return handle


def test_a_broken_stream_continues_on_the_next_target_as_one_uninterrupted_stream(world):
    world.targets("A", "B", resume_streams=True)
    seen = []
    world.b.handler = _continuing(["zy dog."], seen)
    assert world.ask(stream=True) == "The quick brown fox jumps over the lazy dog."
    sent = seen[0]["messages"]
    assert sent[-2] == {"role": "assistant", "content": "".join(PARTIAL)}
    assert sent[-1] == {"role": "user", "content": continuation.INSTRUCTION}
    (row,) = usage_rows(1)
    assert row.ok and row.model_id == world.models["B"].pk and row.route == failover.ROUTE
    assert [(a["model"], a["ok"], a.get("continues", False)) for a in row.attempts] == [
        ("Up A/Target A", False, False),
        ("Up B/Target B", True, True),
    ]
    assert row.completion_tokens > 4  # the partial answer was paid for too


def test_a_continuation_that_restates_the_end_is_stitched_without_the_repeat(world):
    world.targets("A", "B", resume_streams=True)
    world.b.handler = _continuing(["fox jumps over ", "the lazy dog."], [])
    assert world.ask(stream=True) == "The quick brown fox jumps over the lazy dog."


def test_an_anthropic_target_continues_from_the_partial_answer_as_a_prefill(world):
    import anthropic

    from integrations.models import CustomModel, Integration

    claude = Integration.objects.create(
        name="Claude", endpoint=f"{world.b.url}/v1", protocol="anthropic-messages"
    )
    CustomModel.objects.create(integration=claude, name="Target D", model_id="claude-x")
    world.models["D"] = CustomModel.objects.get(name="Target D")
    world.targets("A", "D", resume_streams=True)
    seen = []

    def handle(rec, h):
        seen.append(json.loads(rec.body))
        return reply_anthropic_sse(["zy dog."])(rec, h)

    world.b.handler = handle
    client = anthropic.Anthropic(base_url=world.url, api_key=world.key, max_retries=0)
    with client.messages.stream(
        model=failover.ROUTE, max_tokens=50, messages=failover.MESSAGES
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "The quick brown fox jumps over the lazy dog."
    assert final.stop_reason == "end_turn"
    last = seen[0]["messages"][-1]
    assert last["role"] == "assistant"
    said = last["content"] if isinstance(last["content"], str) else last["content"][0]["text"]
    assert said == "".join(PARTIAL)  # a prefill, with no instruction after it


def test_when_the_continuation_fails_too_the_stream_ends_with_an_error_not_a_clean_end(world):
    world.targets("A", "B", resume_streams=True)
    world.b.handler = failover.error(503)
    assert failover._never_clean(world) == ""
    (row,) = usage_rows(1)
    assert not row.ok and [a["ok"] for a in row.attempts] == [False, False]


def test_a_route_that_does_not_resume_ends_a_broken_stream_with_an_error(world):
    world.targets("A", "B")
    assert failover._never_clean(world) == ""
    assert len(world.b.requests) == 0


# --- the stitcher on its own ---------------------------------------------------------


@pytest.mark.parametrize(
    ("partial", "written", "read"),
    [
        ("one two thr", "ee four", "one two three four"),
        ("one two three ", " four", "one two three four"),  # a prefill lost the space
        ("The quick brown fox jumps over the la", "fox jumps over the lazy dog.",
         "The quick brown fox jumps over the lazy dog."),
        ("Tea is good.", "Tea is good. Coffee too.", "Tea is good. Coffee too."),  # restarted
        ("one two sixtee", "sixteen seventeen", "one two sixteen seventeen"),  # a cut word
        ("a b c", "abc", "a b cabc"),  # a short coincidence is not a repeat
    ],
)  # fmt: skip
def test_the_seam_reads_as_one_answer(partial, written, read):
    assert continuation.seam(partial, written) == read


def test_the_stitcher_continues_the_open_block_and_renumbers_new_ones():
    stitcher = continuation.Stitcher("Let me check", text_index=1, next_index=2)
    out = []
    for event in [
        BlockStarted(0, "reasoning"), BlockDelta(0, "reasoning", "hmm"), BlockEnded(0),
        BlockStarted(1, "text"), BlockDelta(1, "text", " the weather."), BlockEnded(1),
        BlockStarted(2, "tool_call", "call_1", "weather"), BlockDelta(2, "tool_call", "{}"),
        Finished(Finish("tool_calls")),
    ]:  # fmt: skip
        out += stitcher.feed(event)
    assert out == [
        BlockDelta(1, "text", " the weather."), BlockEnded(1),
        BlockStarted(2, "tool_call", "call_1", "weather"), BlockDelta(2, "tool_call", "{}"),
        Finished(Finish("tool_calls")),
    ]  # fmt: skip
