"""Everything before a gateway call reaches its upstream, whichever door it came in by:
the key, the body, the model, the limits. A door (integrations/gateway/doors/) says
how its requests read and how its errors look; admission is the same for all of them.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from django.db import close_old_connections

from config.loops import loop_local
from integrations import services
from integrations.gateway import cooldowns, keys, limits, metering, outages, routing
from integrations.llm.config import CallResult, counted
from integrations.llm.errors import LLMError
from integrations.llm.wires.common import WireError

MAX_BODY = 4 * 1024 * 1024


def presented_key(request) -> str:
    """The gateway key, as OpenAI clients (Authorization: Bearer), Azure clients (api-key)
    or Anthropic clients (x-api-key) send it."""
    raw = request.headers.get("Authorization", "")
    if raw[:7].lower() == "bearer ":
        return raw[7:].strip()
    return (request.headers.get("x-api-key") or request.headers.get("api-key") or "").strip()


def read_body(request) -> bytes | None:
    """The body, or None past MAX_BODY. Read past Django's own upload limit (2.5 MiB,
    which answered an HTML 400), so the gateway's limit is the one that holds."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    if not hasattr(request, "_body"):
        request._body = request.read(MAX_BODY + 1)
    return request._body if len(request._body) <= MAX_BODY else None


@dataclass
class Plan:
    """An admitted call: who asks, by which door, for which model, with what, holding
    which budget; and whether the body goes to the upstream as it is (`forward`)."""

    request: Any
    door: Any
    key: Any
    goal: services.Target
    ask: Any  # the door's reading of the request: model, prompt, stream, body
    hold: Any
    started: float
    forward: Any = None  # integrations.llm.config.Forward
    progress: dict = field(default_factory=dict)
    kept: Any = None  # what a door that stores its answers stores (door.keep)
    route: Any = None  # routing.RouteSpec, when the name is a route's
    failover: Any = None  # routing.Failover: a routed call's attempts
    leg: Any = None  # (leg, started) of a routed stream that has begun
    goals: dict | None = None  # a route's targets by model id, loaded at admission

    def settle(self, result: CallResult, ttft=None) -> tuple:
        """Meter the call and settle its budget hold; return (prompt, completion, cost,
        estimated). Neither step may cost the caller an answer that came."""
        prompt_tokens, completion_tokens, estimated = counted(
            result.usage, self.ask.prompt.text(), result.content
        )
        model = self.goal.model
        cost = model.cost(prompt_tokens, completion_tokens)
        routed, upstream_ms = {}, result.latency_ms
        if (run := self.failover) is not None:  # failed attempts that used tokens count
            more_prompt, more_completion, more_cost = run.extra
            prompt_tokens += more_prompt
            completion_tokens += more_completion
            if more_cost is not None:
                cost = (cost or 0) + more_cost
            routed = {"route": run.spec.name, "attempts": run.attempts, "fallbacks": run.fallbacks}
            upstream_ms = sum(attempt["ms"] for attempt in run.attempts)
        metering.record(
            self.request,
            result=result,
            upstream_ms=upstream_ms,
            config=self.goal.config,
            source="gateway",
            key=self.key,
            user=self.key.owner,
            model=model,
            model_name=model.name,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            estimated=estimated,
            cost=cost,
            latency_ms=round((time.perf_counter() - self.started) * 1000),
            ttft_ms=ttft if ttft is not None else result.ttft_ms,
            ok=result.ok,
            status_code=result.status_code,
            error_kind=result.error.kind if result.error else "",
            streamed=self.ask.stream,
            door=self.door.name,
            prompt=_storable(self.ask.body) if self.key.store_prompts else None,
            **routed,
        )
        tokens = (prompt_tokens, completion_tokens, cost)
        outages.afterwards(limits.settle, self.hold, *tokens, what="budget settlement")
        return (*tokens, estimated)

    def abandon(self, partial: CallResult | None = None, ttft=None) -> None:
        """The client went away: meter what was used (the caller closes the upstream)."""
        result = partial or CallResult(ok=False, streamed=self.ask.stream)
        usage = self.progress.get("usage")
        if usage is not None and not result.usage.reported:
            result.usage = usage
        result.ok, result.error = False, LLMError("connection", "The client closed the stream.")
        self.settle(result, ttft)

    def left_early(self) -> None:
        """The client went away before there was a response to close: meter the call and
        write its row now, since no response closer will."""
        self.abandon()
        metering.flush(self.request)


def storable(value: Any) -> Any:
    """JSON as a database column takes it: no NUL, no lone surrogate."""
    text = json.dumps(value, ensure_ascii=False).encode("utf-8", "replace").decode()
    return json.loads(text.replace("\\u0000", ""))


def _storable(body: Any) -> Any:
    """What a key that keeps prompts stores: the conversation as the caller sent it."""
    return storable(body.get("messages", body.get("input")) if isinstance(body, dict) else body)


@dataclass(frozen=True)
class Refusal:
    """A call refused before any upstream call: the door's answer, and what its usage row
    says (the reason is the answer's error code)."""

    response: Any
    key: Any = None
    model: Any = None
    model_name: str = ""

    @property
    def reason(self) -> str:
        return getattr(self.response, "error_code", "") or "refused"


def understood(request, door, read) -> tuple | Refusal:
    """(key, the door's reading of the body, the model's target, the route and its
    targets by model id) for an authenticated request whose body reads and whose model
    or route the key may call; else the Refusal. For a route, the target is the one its
    limits reserve by."""
    presented = presented_key(request)
    key = keys.authenticate(presented)
    if key is None:
        return Refusal(
            door.unauthorized(), model_name="" if presented.startswith(keys.PREFIX) else None
        )
    body = getattr(request, "_gateway_json", None)  # parsed once, by route_hint
    if body is None:
        raw = read_body(request)
        if raw is None:
            response = door.error(413, "The request body is over 4 MiB.", "request_too_large")
            return Refusal(response, key)
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError):
            response = door.error(400, "The body is not valid JSON.", "invalid_request_error")
            return Refusal(response, key)
    try:
        ask = read(body)
    except WireError as exc:
        response = door.error(400, exc.message, "invalid_request_error", exc.code, exc.param)
        named = body.get("model") if isinstance(body, dict) else None
        return Refusal(response, key, model_name=named if isinstance(named, str) else "")
    route = routing.resolve(key, ask.model)
    if route is not None:
        if route.kind not in door.kinds:
            return Refusal(door.wrong_kind(ask.model, route.kind), key, model_name=ask.model)
        goals = routing.goals_of(route)
        goal = routing.pricing_target(route, goals)
        if goal is None:
            message = f"Route {ask.model[:100]!r} has no enabled target."
            response = door.error(503, message, "overloaded_error", "route_unavailable")
            return Refusal(response, key, model_name=ask.model)
        return key, ask, goal, route, goals
    model = keys.resolve(key, ask.model)
    goal = services.target(model.pk) if model is not None else None
    if goal is None:
        response = door.not_found(ask.model, keys.ambiguous(key, ask.model))
        return Refusal(response, key, model_name=ask.model)
    if goal.model.kind not in door.kinds:
        return Refusal(door.wrong_kind(ask.model, goal.model.kind), key, goal.model, ask.model)
    return key, ask, goal, None, None


def refuse(request, door, refusal: Refusal):
    """Meter a refusal and answer it. A bad key is a row only when it is shaped like one
    of ours (`model_name` None: not worth a row, such as a scanner's guess)."""
    if refusal.model_name is not None:
        name = refusal.model.name if refusal.model is not None else refusal.model_name
        metering.refused(request, door.name, refusal.reason, refusal.response.status_code,
                         refusal.key, refusal.model, name)  # fmt: skip
    return refusal.response


def admit(request, door) -> Plan | Any:
    """Admit a call, or return the door's error response."""
    started = time.perf_counter()
    understood_ = understood(request, door, door.read)
    if isinstance(understood_, Refusal):
        return refuse(request, door, understood_)
    key, ask, goal, route, goals = understood_
    if (prepare := getattr(door, "prepare", None)) is not None:
        try:  # a door's own look-ups that need the key (a stored conversation)
            ask = prepare(ask, key)
        except WireError as exc:
            response = door.error(400, exc.message, "invalid_request_error", exc.code, exc.param)
            return refuse(request, door, Refusal(response, key, goal.model, ask.model))
    forward = door.forward_body(ask, goal, request) if route is None else None
    if route is None and forward is None and (refused := door.untranslatable(ask)):
        name, message = refused
        response = door.error(400, message, "invalid_request_error", "unsupported_parameter", name)
        return refuse(request, door, Refusal(response, key, goal.model, ask.model))
    try:
        hold = limits.admit(key, goal.model, ask.prompt, goal.config)
    except limits.Limited as exc:
        return refuse(request, door, Refusal(door.limited(exc), key, goal.model, ask.model))
    return Plan(request, door, key, goal, ask, hold, started, forward, route=route, goals=goals)


def route_hint(request) -> tuple[str, ...]:
    """The health records of the route this request names, as this worker last resolved
    it for this key: read with the request's generation, in the same round trip, so a
    route's choice costs no round trip of its own. Nothing when unknown (a first call, a
    model's name, a body that does not read): the choice reads them then."""
    from integrations import callcache

    raw = presented_key(request)
    entry = callcache._keys.get(keys.digest(raw)) if raw.startswith(keys.PREFIX) else None
    body = read_body(request) if entry is not None else None
    if body is None:
        return ()
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return ()
    request._gateway_json = parsed
    name = parsed.get("model") if isinstance(parsed, dict) else None
    spec = callcache._names.get(("route", entry[1].pk, name)) if isinstance(name, str) else None
    if not spec or not spec[1]:
        return ()
    return tuple(cooldowns.health_names([leg.model_pk for leg in spec[1].legs]))


async def admitted(request, door):
    """Admit on the event loop itself. With this worker's caches warm, admission asks
    Redis a few questions (well under a millisecond) and the database nothing, where a
    hop to a thread and back cost ~2 ms each under a 256-stream burst. A step that needs
    the database (a cold cache, a key's once-a-minute last-used time, the month's first
    budget check) is refused by Django before its query runs, and nothing before it has
    been counted, so the admission runs again from the start on a thread.

    Only a few go to threads at once. In a burst on cold caches every call misses
    together; the first loads what the rest need, and those waiting then find it
    cached and are admitted on the loop after all."""
    from integrations import callcache

    await callcache.look_on_loop(route_hint(request))
    if os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):  # Django would not stop a query here
        return await off_loop(admit)(request, door)
    try:
        return on_loop(admit, request, door)
    except SynchronousOnlyOperation:
        pass
    async with _to_database():
        try:
            return on_loop(admit, request, door)
        except SynchronousOnlyOperation:
            return await off_loop(admit)(request, door)


_DATABASE_TURNS = 4


def _to_database() -> asyncio.Semaphore:
    """The running loop's turns at an admission that needs the database."""
    return loop_local("database turns", lambda: asyncio.Semaphore(_DATABASE_TURNS))


def on_loop(step, *args):
    """Run a step in a context of its own (on the loop, or inside a thread hop).

    Django keeps database connections per context, and asgiref carries a hop's context
    changes back to its caller. A connection object made by one step (even unused) would
    be inherited by the request's next step on another thread, which may not close a
    connection made on another: it would never go back to PostgreSQL's pool.
    """
    return contextvars.copy_context().run(step, *args)


def off_loop(step):
    """Run a blocking step (the database on a cache miss) on the loop's thread pool, then
    give back any database connection it took: the pool's threads outlive requests."""

    def run(*args):
        try:
            return step(*args)
        finally:
            close_old_connections()

    return sync_to_async(functools.partial(on_loop, run), thread_sensitive=False)
