"""A gateway call from its admission to its answer, whichever door it came in by: the
upstream called (forwarding the body or translating it), the answer or the stream
written by the door's own writer, and the call metered once, whatever happens.

The first upstream item is awaited before answering, so a call that fails at once
answers with its status; a break later is an error event in the door's shape. What is
ready together goes out in one write (the opening chunk with the first delta; the
closing chunks with the end): the writes to the client's socket were a worker's largest
single cost in a burst. Metering asks Redis and never the database (the row is written
after the response), so the event loop runs it in place.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from django.conf import settings
from django.http import StreamingHttpResponse

from integrations.gateway import admission, attempts, outages, routing
from integrations.gateway.pump import KEEPALIVE, Pumped
from integrations.llm import client
from integrations.llm.chat import BlockDelta, BlockStarted, Usage
from integrations.llm.config import CallResult
from integrations.llm.continuation import Stitcher
from integrations.llm.protocols import adapter_for


def _usage(tokens: tuple) -> Usage:
    return Usage(tokens[0], tokens[1], tokens[0] + tokens[1])


def answer(plan, result: CallResult):
    """A non-streamed call's answer, after metering it."""
    tokens = plan.settle(result)
    if not result.ok:
        return plan.door.upstream_error(result)
    return plan.door.answer(plan, result, _usage(tokens), tokens[3])


def keep(plan) -> None:
    """Store what a door keeps of its answer (a stored response), before the answer's
    end goes out; a failure to store is logged and costs the caller nothing."""
    if plan.kept is not None:
        outages.afterwards(plan.door.keep, plan, what="storing of a response")


def call(plan) -> CallResult:
    if plan.route is not None:
        return attempts.call(plan)
    goal = plan.goal
    return goal.failed or client.call(goal.config, plan.ask.prompt, plan.forward)


async def acall(plan) -> CallResult:
    if plan.route is not None:
        return await attempts.acall(plan)
    goal = plan.goal
    return goal.failed or await client.acall(goal.config, plan.ask.prompt, plan.forward)


class Relay:
    def __init__(self, plan):
        self.plan = plan
        self.writer = plan.door.stream_writer(plan)
        self.text: list[str] = []
        self.ttft = None
        self.finished = False
        self.block = (None, "")  # (index, kind) of the block the stream is in
        self.top = -1  # the highest block index the caller has seen
        self.stitcher: Stitcher | None = None

    def refusal(self, first):
        if isinstance(first, CallResult) and not first.ok:
            self.finished = True
            self.plan.settle(first)
            return self.plan.door.upstream_error(first)
        return None

    def item(self, item) -> bytes:
        if self.stitcher is not None:
            return b"".join(self._item(event) for event in self.stitcher.feed(item))
        return self._item(item)

    def _item(self, item) -> bytes:
        if isinstance(item, BlockStarted | BlockDelta):
            self.block, self.top = (item.index, item.kind), max(self.top, item.index)
        out = self.writer.item(item)
        if out and self.ttft is None:
            self.ttft = round((time.perf_counter() - self.plan.started) * 1000)
        if isinstance(item, BlockDelta):
            self.text.append(item.text)
        elif isinstance(item, dict):  # a forwarded chunk
            self.text.append(self.plan.door.chunk_text(item))
        return out

    def resumable(self, result: CallResult) -> str | None:
        """The partial answer to continue on the route's next target, when the route
        resumes streams, the upstream broke it, and it broke inside text (a half-written
        tool call cannot be continued by another model)."""
        run = self.plan.failover
        if run is None or not run.spec.resume or result.ok or self.plan.leg is None:
            return None
        if self.block[1] != "text" or routing.routable(result.error) not in routing.ROUTABLE:
            return None
        return "".join(self.text) or None

    def stitch(self, partial: str) -> None:
        config = self.plan.goal.config
        prefilled = config is not None and adapter_for(config.protocol).prefill
        self.stitcher = Stitcher(partial, self.block[0], self.top + 1, prefilled)

    def tail(self) -> bytes:
        """What a stitcher still holds, before the end goes out."""
        held = self.stitcher.flush() if self.stitcher is not None else ()
        return b"".join(self._item(event) for event in held)

    def end(self, result: CallResult) -> bytes:
        tail = self.tail()
        self.finished = True
        if not result.content and self.text:
            result.content = "".join(self.text)
        attempts.ended(self.plan, result)
        tokens = self.plan.settle(result, self.ttft)
        return tail + self.writer.end(result, _usage(tokens), tokens[3])

    def abandon(self) -> None:
        partial = CallResult(ok=False, content="".join(self.text), streamed=True)
        attempts.ended(self.plan, partial)
        self.plan.abandon(partial, self.ttft)

    @staticmethod
    def response(events) -> StreamingHttpResponse:
        response = StreamingHttpResponse(events, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response


def _upstream(plan):
    goal = plan.goal
    if goal.failed:
        return iter([goal.failed])
    return client.stream(goal.config, plan.ask.prompt, plan.progress, plan.forward, plan.ask.model)


def _opened(plan):
    """(the upstream, the items read from it so far), or a routed call's failure."""
    if plan.route is not None:
        return attempts.open_stream(plan)
    upstream = _upstream(plan)
    return upstream, [next(upstream)]


def _resume(plan, relay, broken: CallResult, partial: str, opened):
    """After a break: the continuation's (upstream, items) with the relay stitching it
    on, or the CallResult the stream ends with (`opened` None: the route stops here)."""
    if opened is None:
        return plan.failover.finish(broken)
    if not isinstance(opened, CallResult):
        relay.stitch(partial)
    return opened


def stream(plan):
    opened = _opened(plan)
    if isinstance(opened, CallResult):
        return Relay(plan).refusal(opened)
    upstream, held = opened
    relay = Relay(plan)  # after the choice of target: its writer knows if it forwards
    if refused := relay.refusal(held[0]):
        return refused

    def events():
        current, items = upstream, itertools.chain(held, upstream or ())
        try:
            while True:
                item = next(items)  # a client stream always ends with its CallResult
                if isinstance(item, CallResult):
                    if (partial := relay.resumable(item)) is not None:
                        again = None
                        if attempts.broke(plan, item, partial):
                            again = attempts.open_stream(plan, partial)
                        item = _resume(plan, relay, item, partial, again)
                        if not isinstance(item, CallResult):
                            current, more = item
                            items = itertools.chain(more, current or ())
                            continue
                    out = relay.end(item)
                    keep(plan)
                    yield out
                    return
                if out := relay.item(item):
                    yield out
        finally:
            if not relay.finished:
                if current is not None:
                    current.close()
                relay.abandon()

    return relay.response(events())


def idle(plan) -> float | None:
    """How long a door that pings lets the upstream be quiet before a ping."""
    return settings.GATEWAY_KEEPALIVE_SECONDS if plan.door.pings else None


def _stepper(upstream):
    return upstream.next if isinstance(upstream, Pumped) else getattr(upstream, "__anext__", None)


async def _aopened(plan, pings: bool):
    """_opened on the loop: (a source to step, the items read from it so far)."""
    wait = idle(plan)
    if plan.route is not None:
        return await attempts.aopen_stream(plan, wait)
    goal = plan.goal
    if goal.failed:
        return None, [goal.failed]
    upstream = client.astream(
        goal.config, plan.ask.prompt, plan.progress, plan.forward, plan.ask.model
    )
    if pings:
        upstream = Pumped(upstream, wait)
        try:  # the first item decides the status: no pings before it
            return upstream, [await upstream.next(ping=False)]
        except asyncio.CancelledError:
            await upstream.aclose()
            raise
    return upstream, [await anext(upstream)]


async def stream_async(plan):
    pings = plan.door.pings
    opened = await _aopened(plan, pings)
    if isinstance(opened, CallResult):
        return admission.on_loop(Relay(plan).refusal, opened)
    upstream, held = opened
    relay = Relay(plan)
    if isinstance(held[0], CallResult) and not held[0].ok:
        return admission.on_loop(relay.refusal, held[0])

    async def events():
        current, items = upstream, list(held)
        step = _stepper(current)
        try:
            while True:
                item = items.pop(0) if items else await step()
                if isinstance(item, CallResult):
                    if (partial := relay.resumable(item)) is not None:
                        again = None
                        if attempts.broke(plan, item, partial):
                            again = await attempts.aopen_stream(plan, idle(plan), partial)
                        item = _resume(plan, relay, item, partial, again)
                        if not isinstance(item, CallResult):
                            if current is not None:
                                await current.aclose()
                            current, items = item[0], list(item[1])
                            step = _stepper(current)
                            continue
                    out = admission.on_loop(relay.end, item)
                    if plan.kept is not None:
                        await admission.off_loop(keep)(plan)
                    yield out
                    return
                if item is KEEPALIVE:
                    yield relay.writer.ping()
                elif out := relay.item(item):
                    yield out
        finally:
            if not relay.finished:
                if current is not None:
                    await current.aclose()
                admission.on_loop(relay.abandon)

    return relay.response(events())


async def serve(request, door, admitted_plan):
    """The async view's body for a door: admitted on the loop, called on the loop."""
    plan = admitted_plan
    try:
        if plan.ask.stream:
            return await stream_async(plan)
        result = await acall(plan)
    except asyncio.CancelledError:  # the client left while the upstream had said nothing
        await admission.off_loop(plan.left_early)()
        raise
    response = admission.on_loop(answer, plan, result)
    if plan.kept is not None:
        await admission.off_loop(keep)(plan)
    return response


def serve_sync(plan):
    if plan.ask.stream:
        return stream(plan)
    response = answer(plan, call(plan))
    keep(plan)
    return response
