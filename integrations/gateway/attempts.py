"""A routed call's attempts, driven with blocking sockets (WSGI) or on the event loop:
each attempt goes to the target integrations/gateway/routing.py chooses, and a stream
fails over freely until its first token, which is when the caller's stream begins.
After that the stream is the answering target's: a break is an error event in the
door's shape (relay.py), or, for a route that resumes streams, a continuation.
"""

from __future__ import annotations

import time

from integrations.gateway import cooldowns, routing
from integrations.gateway.pump import Pumped
from integrations.llm import client, continuation
from integrations.llm.config import CallResult
from integrations.llm.protocols import adapter_for

MAX_HELD = 256  # items held back before the first token (a role chunk, a message_start)


def _begin(plan):
    run = plan.failover = routing.Failover(plan)
    return run


def _choose(plan, run):
    chosen = run.next()
    if chosen is None:
        return None
    leg, goal, forward, config = chosen
    plan.goal, plan.forward, plan.progress = goal, forward, {}
    if run.spec.strategy == "least_busy":
        cooldowns.in_flight(leg.model_pk, 1)
    return leg, goal, forward, config


def _done(run, leg, result, started) -> bool:
    if run.spec.strategy == "least_busy":
        cooldowns.in_flight(leg.model_pk, -1)
    return run.after(leg, result, round((time.perf_counter() - started) * 1000))


def call(plan) -> CallResult:
    run, result = _begin(plan), None
    while (chosen := _choose(plan, run)) is not None:
        leg, goal, forward, config = chosen
        started = time.perf_counter()
        result = goal.failed or client.call(config, plan.ask.prompt, forward)
        if not _done(run, leg, result, started):
            return run.finish(result)
    return run.exhausted(result)


async def acall(plan) -> CallResult:
    run, result = _begin(plan), None
    while (chosen := _choose(plan, run)) is not None:
        leg, goal, forward, config = chosen
        started = time.perf_counter()
        result = goal.failed or await client.acall(config, plan.ask.prompt, forward)
        if not _done(run, leg, result, started):
            return run.finish(result)
    return run.exhausted(result)


def _prompt(plan, goal, partial: str | None):
    """The conversation an attempt sends: the caller's, or, continuing a broken stream,
    the caller's with the partial answer (a prefix where the protocol takes one)."""
    if partial is None or goal.config is None:
        return plan.ask.prompt
    prefill = adapter_for(goal.config.protocol).prefill
    return continuation.prompt(plan.ask.prompt, partial, prefill)


def broke(plan, result: CallResult, partial: str) -> bool:
    """A begun stream broke: count its attempt (the partial answer is paid for) and say
    whether the route goes on to another attempt, which continues the answer."""
    run, begun = plan.failover, plan.leg
    plan.leg = None
    result.content = result.content or partial
    if not _done(run, begun[0], result, begun[1]):
        return False
    run.continuing = True
    return True


def open_stream(plan, partial: str | None = None):
    """(upstream, the items before and with the first token) of the attempt that gave
    a first token, or the CallResult to answer with. With `partial`, the attempts
    continue a stream that broke after saying it."""
    run = _begin(plan) if partial is None else plan.failover
    result = None
    while (chosen := _choose(plan, run)) is not None:
        leg, goal, forward, config = chosen
        started = time.perf_counter()
        if goal.failed:
            result = goal.failed
        else:
            upstream = client.stream(
                config, _prompt(plan, goal, partial), plan.progress, forward, plan.ask.model,
                first_token=run.spec.first_token,
            )  # fmt: skip
            held, result = [], None
            for item in upstream:
                if isinstance(item, CallResult):
                    result = item
                    break
                held.append(item)
                if routing.token(item) or len(held) >= MAX_HELD:
                    plan.leg = (leg, started)
                    return upstream, held
            if result.ok:  # an answer without a token (empty): it stands
                _done(run, leg, result, started)
                return None, [*held, result]
        if not _done(run, leg, result, started):
            return run.finish(result)
    return run.exhausted(result)


async def aopen_stream(plan, idle: float | None, partial: str | None = None):
    """open_stream on the loop; the upstream is pumped by a task of its own (a door that
    pings waits on it with a timeout)."""
    run = _begin(plan) if partial is None else plan.failover
    result = None
    while (chosen := _choose(plan, run)) is not None:
        leg, goal, forward, config = chosen
        started = time.perf_counter()
        if goal.failed:
            result = goal.failed
        else:
            upstream = Pumped(
                client.astream(
                    config, _prompt(plan, goal, partial), plan.progress, forward, plan.ask.model,
                    first_token=run.spec.first_token,
                ),
                idle,
            )  # fmt: skip
            held, result = [], None
            try:
                while True:
                    item = await upstream.next(ping=False)
                    if isinstance(item, CallResult):
                        result = item
                        break
                    held.append(item)
                    if routing.token(item) or len(held) >= MAX_HELD:
                        plan.leg = (leg, started)
                        return upstream, held
            except BaseException:
                await upstream.aclose()
                raise
            await upstream.aclose()
            if result.ok:
                _done(run, leg, result, started)
                return None, [*held, result]
        if not _done(run, leg, result, started):
            return run.finish(result)
    return run.exhausted(result)


def ended(plan, result: CallResult) -> None:
    """A stream that had begun ended (whole, broken or left): its attempt counts, and a
    break cools its target down like any failure."""
    run, begun = plan.failover, plan.leg
    if run is not None and begun is not None:
        plan.leg = None
        _done(run, begun[0], result, begun[1])
