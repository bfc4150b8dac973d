"""Routes in the gateway: which name is a route, which target each attempt goes to, and
what a failure means: retry that target, move on, use a fallback, or answer now.

The rules, in the order they apply:
- A caller's bad request (400/422) is answered at once, never retried; except that a
  context overflow goes to the route's context-window fallbacks, and a content filter
  to its content-policy fallbacks.
- The upstream's trouble (connect errors, timeouts before the first token, 408, 429,
  5xx and 529, a refused credential, an unreadable reply) retries the same target as
  the route's policy says, then moves on. Each failure is counted in the shared health
  records (integrations/gateway/cooldowns.py); a target cooling down is skipped.
- A target that cannot carry the request (tools on a completions server, a parameter
  only the caller's format has) is skipped and named if none is left.
- When every target is cooling down, the one whose cooldown ends first gets one attempt
  (one caller a second, so no upstream is hammered); else 503 with Retry-After.
- A conversation holding a target's tool calls goes back to that target while it is
  usable: tool ids and signed thinking do not travel between providers.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from typing import Any

from integrations import callcache, services
from integrations.gateway import cooldowns
from integrations.llm import answers
from integrations.llm.chat import BlockDelta, ToolCall
from integrations.llm.config import CallResult, counted
from integrations.llm.errors import LLMError
from integrations.models import Route
from integrations.models.routes import ROUTABLE_KINDS
from integrations.telemetry import metrics

TOOL_MEMORY = 3600  # seconds a tool call is remembered with the target that made it
PROBE_SECONDS = 1.0  # while everything cools down: one attempt a second at most
ROUTABLE = frozenset(ROUTABLE_KINDS)
BROKEN = ("auth", "forbidden", "credential", "secret_origin")  # the target, not the call


@dataclass(frozen=True)
class Leg:
    model_pk: Any
    name: str  # "Integration/Model", for messages and usage
    role: str
    weight: int
    position: int


@dataclass(frozen=True)
class RouteSpec:
    """A route as the gateway uses it: read once per generation, no rows."""

    pk: Any
    name: str
    kind: str
    strategy: str
    retry_same: frozenset
    move_on: frozenset
    attempts: int
    deadline: float
    first_token: float | None
    threshold: int
    window: int
    cooldown: int
    resume: bool
    legs: tuple[Leg, ...]

    def role(self, role: str) -> list[Leg]:
        return [leg for leg in self.legs if leg.role == role]


def spec_of(route: Route) -> RouteSpec:
    legs = tuple(
        Leg(t.model_id, f"{t.model.integration.name}/{t.model.name}", t.role, t.weight, t.position)
        for t in route.targets.all()
    )
    return RouteSpec(
        route.pk, route.name, route.kind, route.strategy,
        frozenset(route.retry_same), frozenset(route.move_on), route.attempts_per_target,
        float(route.deadline_seconds), route.first_token_seconds, route.failures_to_cool,
        route.failure_window_seconds, route.cooldown_seconds, route.resume_streams, legs,
    )  # fmt: skip


def routes_for(key):
    """The enabled routes a gateway key may call."""
    routes = Route.objects.filter(enabled=True)
    return routes if key.all_models else routes.filter(pk__in=key.routes.values("pk"))


def resolve(key, name: str) -> RouteSpec | None:
    """The route `name` means for this key, or None (then it may name a model)."""
    if not name or len(name) > 100:
        return None
    token = ("route", key.pk, name)
    found = callcache.remembered(callcache._names, token)
    if found is None:
        with callcache.single_flight(token):
            found = callcache.remembered(callcache._names, token)
            if found is None:
                at = callcache.generation() if callcache.enabled() else ""
                route = (
                    routes_for(key)
                    .filter(name=name)
                    .prefetch_related("targets__model__integration")
                    .first()
                )
                found = spec_of(route) if route is not None else False
                callcache.remember(callcache._names, token, found, at)
    return found or None


def goals_of(spec: RouteSpec) -> dict:
    """Every target of a route, loaded at admission (where the database may be asked):
    the attempts then run on the event loop without a query."""
    return {leg.model_pk: services.target(leg.model_pk) for leg in spec.legs}


def pricing_target(spec: RouteSpec, goals: dict | None = None) -> services.Target | None:
    """What a call's limits reserve against: the dearest usable target (a fallback may
    answer), or one without prices, which a budget cannot count."""
    goals = goals_of(spec) if goals is None else goals
    best, best_cost = None, None
    for leg in spec.legs:
        goal = goals.get(leg.model_pk)
        if goal is None:
            continue
        cost = goal.model.cost(1_000_000, 1_000_000)
        if cost is None:
            return goal
        if best is None or cost > best_cost:
            best, best_cost = goal, cost
    return best


def routable(error: LLMError) -> str:
    """The kind a route reads an error as: a 408 is a timeout."""
    return "timeout" if error.kind == "http_error" and error.status == 408 else error.kind


def _tool_ids(prompt) -> list[str]:
    for message in reversed(getattr(prompt, "messages", ())):
        if message.role == "assistant":
            return [c.id for c in message.tool_calls() if c.id][:16]
    return []


def _tool_name(spec: RouteSpec, call_id: str) -> str:
    return f"gw-tool:{spec.pk}:{call_id[:200]}"


class Failover:
    """One routed call's attempts: the order of the targets, each outcome, the row."""

    def __init__(self, plan):
        self.plan, self.spec = plan, plan.route
        self.began = time.monotonic()
        self.attempts: list[dict] = []
        self.skipped: list[str] = []
        self.fallbacks = 0
        self.extra = (0, 0, None)  # tokens and cost of failed attempts that used some
        self.tries: dict = {}
        ids = _tool_ids(plan.ask.prompt)
        self.health, notes = cooldowns.read(
            [leg.model_pk for leg in self.spec.legs], [_tool_name(self.spec, i) for i in ids]
        )
        self.sticky = next((n for n in notes if n), None)
        self.now = time.time()
        self.queue = self._order("main")
        self.last_chance = False
        self.spent = False  # every target failed or was skipped: the route's own error
        self.continuing = False  # later attempts continue a stream that broke

    # --- choosing ------------------------------------------------------------------------

    def _order(self, role: str) -> list[Leg]:
        legs = [
            leg for leg in self.spec.role(role) if not self.health[leg.model_pk].cooling(self.now)
        ]
        strategy = self.spec.strategy
        if strategy == "weighted":
            legs = _weighted(legs)
        elif strategy == "least_busy":
            legs.sort(key=lambda leg: (self.health[leg.model_pk].busy, leg.position))
        elif strategy == "latency":
            legs.sort(key=lambda leg: (self.health[leg.model_pk].latency_ms or 0, leg.position))
        if self.sticky is not None:
            legs.sort(key=lambda leg: str(leg.model_pk) != self.sticky)
        return legs

    def remaining(self) -> float:
        return self.spec.deadline - (time.monotonic() - self.began)

    def next(self):
        """(leg, target, forward, config) for the next attempt, or None."""
        while self.queue and self.remaining() > 0:
            leg = self.queue[0]
            goals = self.plan.goals
            goal = goals.get(leg.model_pk) if goals else services.target(leg.model_pk)
            if goal is None:
                self._skip(leg, f"{leg.name} is disabled")
                continue
            health = self.health[leg.model_pk]
            if (
                self.tries.get(leg) is None
                and health.probing(self.now)
                and not cooldowns.claim_probe(
                    leg.model_pk, min(goal.config.timeout if goal.config else 30.0, 60.0)
                )
            ):
                self._skip(leg, f"{leg.name} is being probed after a cooldown", quiet=True)
                continue
            forward = None
            if not (self.spec.resume and self.plan.ask.stream):  # stitching needs events
                forward = self.plan.door.forward_body(self.plan.ask, goal, self.plan.request)
            if forward is None and (refused := self.plan.door.untranslatable(self.plan.ask)):
                self._skip(leg, f"{leg.name}: {refused[1]}")
                continue
            config, left = goal.config, self.remaining()
            if config is not None and config.timeout > left:  # the route's deadline is nearer
                config = replace(config, timeout=max(0.05, left))
            return leg, goal, forward, config
        return self._last_chance()

    def _last_chance(self):
        """Everything cools down and nothing was tried: one attempt at the target whose
        cooldown ends first, by one caller a second."""
        if self.attempts or self.last_chance:
            return None
        cooling = [
            leg for leg in self.spec.role("main") if self.health[leg.model_pk].cooling(self.now)
        ]
        if not cooling:
            return None
        self.last_chance = True
        leg = min(cooling, key=lambda leg: self.health[leg.model_pk].until)
        if not cooldowns.claim_probe(leg.model_pk, PROBE_SECONDS):
            return None
        self.queue = [leg]
        self.health[leg.model_pk] = cooldowns.Health()
        return self.next()

    def _skip(self, leg: Leg, why: str, quiet: bool = False) -> None:
        self.queue.remove(leg)
        if not quiet:
            self.skipped.append(why)

    # --- outcomes ------------------------------------------------------------------------

    def after(self, leg: Leg, result: CallResult, ms: int) -> bool:
        """Record an attempt; True when another attempt should follow."""
        error = result.error
        self.attempts.append({
            "model": leg.name, "ok": result.ok, "status": result.status_code,
            "error_kind": error.kind if error is not None else "", "ms": ms,
        } | ({"continues": True} if self.continuing else {}))  # fmt: skip
        pk = leg.model_pk
        if result.ok:
            if self.health[pk].recorded:
                cooldowns.succeeded(pk)
            if self.spec.strategy == "latency":
                cooldowns.observed(pk, ms, self.health[pk].latency_ms)
            self._remember_tools(leg, result)
            return False
        self._count_spent(leg, result)
        if error is None:  # the caller left mid-stream: no fault of the target's
            return False
        kind = routable(error)
        if kind == "unsupported":
            self._skip(leg, f"{leg.name}: {error.message}")
            self.spent = not self.queue
            return bool(self.queue)
        if kind in ("bad_request", "too_large"):
            return self._fallback(error)
        if kind not in ROUTABLE:
            return False
        said = f"{kind}: {error.message}"
        if kind in BROKEN:
            until = cooldowns.broken(pk, said, self.spec.cooldown)
        else:
            s = self.spec
            until = cooldowns.failed(pk, said, threshold=s.threshold, window=s.window,
                                     cooldown=s.cooldown, retry_after=error.retry_after)  # fmt: skip
        if until > time.time() and not self.health[pk].cooling(self.now):
            goal = self.plan.goals.get(pk) if self.plan.goals else services.target(pk)
            if goal is not None:
                metrics.cooldown_started(goal, error.status)
        self.tries[leg] = self.tries.get(leg, 0) + 1
        again = kind in self.spec.retry_same and not error.retry_after and kind not in BROKEN
        if again and self.tries[leg] < self.spec.attempts:
            return True
        if kind in self.spec.move_on or again:
            self.queue.remove(leg)
            if self.queue:
                self.fallbacks += 1
            self.spent = not self.queue
            return bool(self.queue)
        return False

    def finish(self, result: CallResult) -> CallResult:
        """What the caller is answered after the last attempt."""
        return self.exhausted(result) if self.spent and not result.ok else result

    def _fallback(self, error: LLMError) -> bool:
        for role, applies in (
            ("context", answers.context_exceeded),
            ("content", answers.content_filtered),
        ):
            legs = self.spec.role(role)
            if legs and applies(error) and not any(leg.role == role for leg in self.tries):
                self.queue = [
                    leg for leg in legs if not self.health[leg.model_pk].cooling(self.now)
                ]
                self.tries.update({leg: 0 for leg in self.queue})
                if self.queue:
                    self.fallbacks += 1
                    return True
        return False

    def _count_spent(self, leg: Leg, result: CallResult) -> None:
        """A failed attempt that used tokens (a stream cut short) is paid for too."""
        if not result.usage.reported and not result.content:
            return
        goals = self.plan.goals  # loaded at admission: no query here, on the event loop
        goal = goals.get(leg.model_pk) if goals else services.target(leg.model_pk)
        prompt, completion, _ = counted(result.usage, self.plan.ask.prompt.text(), result.content)
        cost = goal.model.cost(prompt, completion) if goal is not None else None
        before = self.extra
        total = None if cost is None and before[2] is None else (cost or 0) + (before[2] or 0)
        self.extra = (before[0] + prompt, before[1] + completion, total)

    def _remember_tools(self, leg: Leg, result: CallResult) -> None:
        if result.message is None:
            return
        for part in result.message.parts:
            if isinstance(part, ToolCall) and part.id:
                cooldowns.remember(_tool_name(self.spec, part.id), str(leg.model_pk), TOOL_MEMORY)

    def exhausted(self, last: CallResult | None) -> CallResult:
        """The answer when no attempt is left: the one attempt's own error, or 503."""
        if (
            last is not None
            and len(self.attempts) == 1
            and not self.skipped
            and not self.last_chance
        ):
            return last
        self.now = time.time()
        health, _ = cooldowns.read([leg.model_pk for leg in self.spec.legs])
        ends = [h.until - self.now for h in health.values() if h.cooling(self.now)]
        wait = min(ends) if ends else None
        if self.remaining() <= 0:
            message = f"Route {self.spec.name!r} ran out of its {self.spec.deadline:g} s deadline"
        elif not self.attempts and self.skipped:
            message = f"No target of route {self.spec.name!r} can take this request"
        elif not self.attempts:
            message = f"Every target of route {self.spec.name!r} is cooling down"
        else:
            message = f"Every target of route {self.spec.name!r} failed"
        tried = [f"{a['model']} ({a['error_kind']}{' ' + str(a['status']) if a['status'] else ''})"
                 for a in self.attempts if not a["ok"]]  # fmt: skip
        detail = "; ".join(tried + self.skipped)
        if self.skipped and not self.attempts:
            error = LLMError("unsupported", f"{message}: {detail}."[:1000])
        else:
            error = LLMError("server_error", f"{message}{': ' + detail if detail else ''}."[:1000],
                             status=503, retry_after=wait if wait is not None else 1.0)  # fmt: skip
        result = CallResult(ok=False, error=error, streamed=self.plan.ask.stream)
        if last is not None:
            result.request = last.request
        return result


def _weighted(legs: list[Leg]) -> list[Leg]:
    """The targets in a random order where each comes first in proportion to its weight."""
    legs, out = list(legs), []
    while legs:
        pick = random.choices(legs, weights=[leg.weight for leg in legs])[0]
        legs.remove(pick)
        out.append(pick)
    return out


def token(item) -> bool:
    """Whether a stream item carries part of the answer (after it, no failover)."""
    if isinstance(item, BlockDelta):
        return True
    if isinstance(item, dict):
        if item.get("type") == "content_block_delta":
            return True
        for choice in item.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and any(
                delta.get(k) for k in ("content", "tool_calls", "reasoning_content", "refusal")
            ):
                return True
    return False


CHECK_COOLDOWN = 60  # seconds a target that failed check_models is skipped


def observe_check(model_pk, result: CallResult) -> None:
    """A health check's result feeds the same records as the gateway's calls."""
    if result.ok:
        if cooldowns.read([model_pk])[0][model_pk].recorded:
            cooldowns.succeeded(model_pk)
    elif routable(result.error) in ROUTABLE:
        said = f"{result.error.kind}: {result.error.message} (check_models)"
        before = cooldowns.read([model_pk])[0][model_pk]
        cooldowns.broken(model_pk, said, CHECK_COOLDOWN)
        if not before.cooling(time.time()) and (goal := services.target(model_pk)) is not None:
            metrics.cooldown_started(goal, result.error.status)


@dataclass(frozen=True)
class TargetState:
    target: Any  # RouteTarget
    state: str  # healthy | failing | cooling | probing
    until: float
    error: str
    busy: int
    latency_ms: float | None

    @property
    def until_at(self):
        from datetime import UTC, datetime

        return datetime.fromtimestamp(self.until, tz=UTC)


def states(route: Route) -> list[TargetState]:
    """Each target's state now, for the route's page."""
    targets = list(route.targets.select_related("model__integration"))
    health, _ = cooldowns.read([t.model_id for t in targets])
    now, out = time.time(), []
    for t in targets:
        h = health[t.model_id]
        state = "cooling" if h.cooling(now) else "probing" if h.probing(now) else (
            "failing" if h.recorded else "healthy")  # fmt: skip
        out.append(TargetState(t, state, h.until, h.error, h.busy, h.latency_ms))
    return out
