"""/v1/responses: OpenAI's Responses API, in and out, for any model a key may use.

The conversation is always translated (no upstream protocol here speaks Responses). A
response is stored for its key unless the caller says `store: false`: the conversation
so far and the answer, scrubbed, until RESPONSES_RETENTION_DAYS pass. It is written
before the answer's last byte, so a `previous_response_id` sent the moment a caller has
the answer finds it.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.http import JsonResponse
from django.utils import timezone

from integrations.gateway.admission import storable
from integrations.gateway.doors.openai import OpenAIDoor
from integrations.llm.config import CallResult
from integrations.llm.redact import scrubber
from integrations.llm.wires import openai_responses as wire
from integrations.llm.wires.common import WireError


def stored(key, response_id: str):
    """The key's stored response with this id, unless it has expired."""
    from integrations.models import StoredResponse

    return StoredResponse.objects.filter(
        id=response_id[:64], key=key, expires_at__gt=timezone.now()
    ).first()


class ResponsesDoor(OpenAIDoor):
    name = "responses"

    def read(self, body):
        return wire.read_request(body)

    def forward_body(self, ask, goal, request):
        return None

    def prepare(self, ask, key):
        """With previous_response_id: the stored conversation, then this input."""
        if not ask.previous_response_id:
            return ask
        previous = stored(key, ask.previous_response_id)
        if previous is None:
            raise WireError(
                f"Previous response with id {ask.previous_response_id[:64]!r} not found.",
                "previous_response_id",
                "previous_response_not_found",
            )
        ask.history = previous.history
        ask.prompt = wire.prompt_of(ask, previous.history + ask.items)
        return ask

    def answer(self, plan, result: CallResult, usage, estimated: bool) -> JsonResponse:
        reply = wire.write_reply(plan.ask, plan.ask.model, result.message, result.finish, usage)
        plan.kept = reply
        return self.json_reply(reply, estimated)

    def stream_writer(self, plan):
        return ResponsesStream(plan)

    def keep(self, plan) -> None:
        """Store the response as its caller received it (not a failed one)."""
        from integrations.models import StoredResponse

        ask, reply = plan.ask, plan.kept
        if not ask.store or reply is None or reply["status"] == "failed":
            return
        sc = scrubber(tuple(plan.goal.config.secrets()))
        history = ask.history + ask.items + reply["output"]
        StoredResponse.objects.create(
            id=ask.id,
            key=plan.key,
            expires_at=timezone.now() + timedelta(days=settings.RESPONSES_RETENTION_DAYS),
            history=storable(sc.json(history)),
            response=storable(reply),
        )


class ResponsesStream:
    """A stream of Responses events written from neutral ones; the finished response
    is left on the plan for the door to store."""

    def __init__(self, plan):
        self.plan = plan
        self.writer = wire.Writer(plan.ask, plan.ask.model)

    def item(self, item) -> bytes:
        return self.writer.event(item)

    def end(self, result: CallResult, usage, estimated: bool) -> bytes:
        error = ""
        if not result.ok:
            error = f"{result.error.headline} {result.error.hint}".strip()
            if result.finish is None:
                error = f"The answer was cut short before the upstream finished it. {error}"
        out = self.writer.end(result.finish, usage, error)
        self.plan.kept = self.writer.final
        return out


RESPONSES = ResponsesDoor()
