"""POST /api/v2/chat: run a Sandbox prompt from a script; recorded in history like a UI run."""

from __future__ import annotations

import uuid

from ninja import Field, Router, Schema
from ninja.errors import HttpError

from integrations.api.common import usage_dict
from integrations.llm.config import CallResult, Prompt, Usage
from integrations.schemas import Input
from sandbox import ratelimit, services

router = Router(tags=["chat"])


class ChatParameters(Input):
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=200_000)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: list[str] | None = Field(None, max_length=4)


class ChatIn(Input):
    model: uuid.UUID = Field(description="The LLM id from /api/v2/llms")
    system: str = ""
    user: str = Field(min_length=1)
    parameters: ChatParameters = Field(default_factory=ChatParameters)


class ChatOut(Schema):
    run_id: str
    model: str
    reply: str
    finish_reason: str
    usage: dict
    latency_ms: int | None
    cost: float | None


@router.post("chat", response=ChatOut, summary="Run a prompt against an LLM")
def chat(request, payload: ChatIn):
    goal = services.target(payload.model)
    if goal is None:
        raise HttpError(404, "No enabled LLM with that id.")
    model = goal.model
    wait = ratelimit.check(request.user.pk, 1)
    if wait:
        raise HttpError(429, f"Too many runs: try again in {wait} s.")
    params = {k: v for k, v in payload.parameters.dict().items() if v is not None}
    run = services.run_once(request, goal, Prompt.of(payload.system, payload.user, params))
    if run.status != "ok":
        error = HttpError(502, f"The model call failed: {run.error.message} {run.error.hint}")
        error.error = run.error.as_dict() | {"run_id": str(run.pk)}
        raise error
    # Estimated counts are not what the endpoint reported: the API says "not reported".
    usage = (
        Usage()
        if run.usage_estimated
        else Usage(run.prompt_tokens, run.completion_tokens, run.total_tokens)
    )
    result = CallResult(ok=True, usage=usage)
    return {
        "run_id": str(run.pk),
        "model": model.name,
        "reply": run.reply,
        "finish_reason": run.finish_reason,
        "usage": usage_dict(result),
        "latency_ms": run.latency_ms,
        "cost": float(run.cost) if run.cost is not None and not run.usage_estimated else None,
    }
