"""POST /api/v2/chat: run a Sandbox prompt from a script; recorded in history like a UI run."""

from __future__ import annotations

import uuid

from ninja import Field, Router, Schema
from ninja.errors import HttpError
from pydantic import model_validator

from integrations.api.common import usage_dict
from integrations.gateway import routed
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
    model: uuid.UUID | None = Field(None, description="The LLM id from /api/v2/llms")
    route: uuid.UUID | None = Field(
        None, description="Or a route's id from /api/v2/routes: it fails over as in the gateway"
    )
    system: str = ""
    user: str = Field(min_length=1)
    parameters: ChatParameters = Field(default_factory=ChatParameters)

    @model_validator(mode="after")
    def _one_of_model_and_route(self):
        if (self.model is None) == (self.route is None):
            raise ValueError("Give either model or route.")
        return self


class ChatOut(Schema):
    run_id: str
    model: str
    route: str = ""
    attempts: list[dict] = []
    reply: str
    finish_reason: str
    usage: dict
    latency_ms: int | None
    cost: float | None


@router.post("chat", response=ChatOut, summary="Run a prompt against an LLM")
def chat(request, payload: ChatIn):
    params = {k: v for k, v in payload.parameters.dict().items() if v is not None}
    prompt = Prompt.of(payload.system, payload.user, params)
    if payload.route is not None:
        goal = routed.prepare(payload.route, prompt)
        if goal is None:
            raise HttpError(404, "No enabled route with that id.")
    else:
        goal = services.target(payload.model)
        if goal is None:
            raise HttpError(404, "No enabled LLM with that id.")
    wait = ratelimit.check(request.user.pk, 1)
    if wait:
        raise HttpError(429, f"Too many runs: try again in {wait} s.")
    run = services.run_once(request, goal, prompt)
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
        "model": run.model_name,
        "route": run.route_name,
        "attempts": run.attempts,
        "reply": run.reply,
        "finish_reason": run.finish_reason,
        "usage": usage_dict(result),
        "latency_ms": run.latency_ms,
        "cost": float(run.cost) if run.cost is not None and not run.usage_estimated else None,
    }
