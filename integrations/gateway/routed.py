"""A route called from inside the console (the Sandbox, evaluations): the same choice of
targets, retries, cooldowns and fallbacks as the gateway's doors (attempts.py), for a
caller that stands at no door and so never forwards a body as it came."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from integrations.gateway import attempts, routing
from integrations.llm.config import CallResult, Prompt
from integrations.models import Route


@dataclass(frozen=True)
class Ask:
    prompt: Prompt
    stream: bool
    model: str  # the route's name, as a stream names its model


class Inside:
    """The door of a caller inside the console: it has no body of its own to forward
    and no parameter a translation could lose."""

    name = "console"

    def forward_body(self, ask, goal, request):
        return None

    def untranslatable(self, ask):
        return None


INSIDE = Inside()


@dataclass
class Routed:
    """One routed call from inside: what attempts.py reads and writes of a gateway plan.
    After the call, `goal` is the target that answered (or was tried last)."""

    route: routing.RouteSpec
    ask: Ask
    goals: dict
    door: Any = INSIDE
    request: Any = None
    goal: Any = None
    forward: Any = None
    progress: dict = field(default_factory=dict)
    failover: Any = None
    leg: Any = None

    @property
    def attempts(self) -> list[dict]:
        return self.failover.attempts if self.failover is not None else []


def usable_routes():
    return Route.objects.filter(enabled=True).order_by("name")


def prepare(route_pk, prompt: Prompt, stream: bool = False) -> Routed | None:
    """The route's call, its targets loaded now; None when it is disabled or gone."""
    route = (
        usable_routes().filter(pk=route_pk).prefetch_related("targets__model__integration").first()
    )
    if route is None:
        return None
    spec = routing.spec_of(route)
    return Routed(spec, Ask(prompt, stream, spec.name), routing.goals_of(spec))


def call(routed: Routed) -> CallResult:
    return attempts.call(routed)


def stream(routed: Routed):
    """The answering target's events, then the CallResult, always last; closing it early
    (a person pressed Stop) closes the upstream without blaming the target."""
    opened = attempts.open_stream(routed)
    if isinstance(opened, CallResult):
        yield opened
        return
    upstream, held = opened
    ended = False
    try:
        for item in itertools.chain(held, upstream or ()):
            if isinstance(item, CallResult):
                ended = True
                attempts.ended(routed, item)
            yield item
    finally:
        if not ended:
            if upstream is not None:
                upstream.close()
            attempts.ended(routed, CallResult(ok=False, streamed=True))
