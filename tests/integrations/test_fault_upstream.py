"""An upstream that answers in every malformed shape the audit found.

Each shape goes down every path that calls a model (the Test button, the Sandbox run,
its stream, Compare, the chat API, check_models). Each must end as a stored run or
test with a classified error, or with the odd value dropped: never a 500, never a cut
stream, and check_models goes on to the next model. Run on PostgreSQL too (CI), where
a lone surrogate or an over-long finish reason used to fail the INSERT.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from integrations.models import ConnectionTest
from sandbox.models import SandboxRun
from tests.integrations.test_api import Api

HX = {"HX-Request": "true"}


def choice(**message_fields) -> dict:
    message = {"role": "assistant", "content": "fine"} | message_fields
    return {"index": 0, "message": message, "finish_reason": "stop"}


# Raw JSON text, so a lone surrogate can be sent as the escape "\ud800".
SHAPES = {
    "usage is a word": json.dumps({"choices": [choice()], "usage": "lots"}),
    "usage is a list": json.dumps({"choices": [choice()], "usage": [1, 2]}),
    "negative tokens": json.dumps({"choices": [choice()], "usage": {"prompt_tokens": -5}}),
    "1e30 tokens": json.dumps({"choices": [choice()]})[:-1]
    + ', "usage": {"prompt_tokens": 1e30, "completion_tokens": 1e300}}',
    "2^40 tokens": json.dumps({"choices": [choice()], "usage": {"total_tokens": 2**40}}),
    "text part is a number": json.dumps({"choices": [choice(content=[{"text": 5}])]}),
    "lone surrogate": '{"choices": [{"message": {"content": "a\\ud800b"}, "finish_reason": "stop"}]}',
    "finish reason is an object": json.dumps(
        {"choices": [{"message": {"content": "x"}, "finish_reason": {"why": "stop"}}]}
    ),
    "finish reason is long": json.dumps(
        {"choices": [{"message": {"content": "x"}, "finish_reason": "s" * 500}]}
    ),
    "choices is a string": json.dumps({"choices": "none"}),
    "message is a list": json.dumps({"choices": [{"message": [1]}]}),
    "nested 5000 deep": "[" * 5000 + "]" * 5000,
}

STREAM_SHAPES = {
    "delta is a string": ['{"choices": [{"delta": "abc"}]}'],
    "choices is a number": ['{"choices": 7}'],
    "usage is a word": ['{"choices": [{"delta": {"content": "x"}}]}', '{"usage": "lots"}'],
    "lone surrogate": ['{"choices": [{"delta": {"content": "a\\ud800"}}]}'],
    "finish reason is an object": ['{"choices": [{"delta": {}, "finish_reason": {"a": 1}}]}'],
    "not json": ["{nope"],
    "huge tokens": ['{"choices": [{"delta": {"content": "x"}}], "usage": {"total_tokens": 1e300}}'],
}


def fault_handler(reply: str, events: list[str]):
    def handle(rec, h):
        if rec.json().get("stream"):
            h.send_response(200)
            h.send_header("Content-Type", "text/event-stream")
            h.end_headers()
            for event in events:
                h.wfile.write(f"data: {event}\n\n".encode())
            h.wfile.write(b"data: [DONE]\n\n")
            h.close_connection = True
            return
        body = reply.encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handle


def assert_settled(response) -> None:
    assert response.status_code < 500, response.content[:500]


CASES = [
    (name, reply, ['{"choices": [{"delta": {"content": "ok"}}]}']) for name, reply in SHAPES.items()
]
CASES += [
    (f"stream: {name}", SHAPES["usage is a word"], events) for name, events in STREAM_SHAPES.items()
]


@pytest.mark.parametrize("name, reply, events", CASES, ids=[c[0] for c in CASES])
def test_every_path_survives_a_malformed_reply(
    name, reply, events, client, bob, api_token, make_integration, upstream
):
    upstream.handler = fault_handler(reply, events)
    model = make_integration(name="Faulty")
    second = make_integration(name="Second")
    client.force_login(bob)
    # The Test button.
    assert_settled(client.post(reverse("model-test", args=[model.pk]), headers=HX))
    # The Sandbox: a run, a stream, a compare.
    run = {"model": str(model.pk), "user_prompt": "hi", "max_tokens": "20"}
    assert_settled(client.post(reverse("sandbox-run-now"), run))
    streamed = client.post(reverse("sandbox-stream"), {**run, "stream": "on"})
    text = b"".join(streamed.streaming_content).decode()
    assert "event: done" in text, text[-500:]
    assert_settled(client.post(reverse("sandbox-run-now"), {**run, "compare": [str(second.pk)]}))
    # The chat API.
    status, _ = Api(client, api_token(bob)).call(
        "post", "chat", {"model": str(model.pk), "user": "hi"}
    )
    assert status in (200, 502)  # 502: the upstream failed, said in the classified error
    # check_models goes through every model.
    out = io.StringIO()
    with contextlib.suppress(CommandError):  # it exits 1 when a model fails
        call_command("check_models", stdout=out, stderr=io.StringIO())
    assert "Faulty" in out.getvalue() and "Second" in out.getvalue()
    # Everything was stored, with a classified kind where it failed.
    runs = SandboxRun.objects.all()
    assert runs.count() == 5  # run, stream, compare (2), chat API
    for row in [*runs, *ConnectionTest.objects.all()]:
        assert row.error_kind in ("", "bad_response", "non_json", "connection"), row.error_kind
        assert "\ud800" not in (getattr(row, "reply", "") or "")


def test_a_stored_non_ascii_key_is_a_classified_config_error(make_integration, upstream):
    from integrations import writes

    model = make_integration(token="sk-tökén-0123456789", secret_header=None)
    result, test = writes.test_model(model)
    assert result.error.kind == "config" and "non-ASCII" in result.error.message
    assert "tökén" not in result.error.message and upstream.requests == []
