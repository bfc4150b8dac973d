"""An upstream stream driven by a task of its own, for a caller that waits with a timeout."""

from __future__ import annotations

import asyncio

KEEPALIVE = object()  # the upstream said nothing for a while


class Pumped:
    """An upstream driven by a task of its own, for a door that pings: the caller can
    wait for the next item with a timeout and send a ping when it passes. All of the
    upstream's steps run in the pump's task, so its context (the call's deadline) is one
    context throughout; the queue is short, so a slow caller slows the upstream down."""

    def __init__(self, upstream, idle: float):
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=16)
        self.idle = idle
        self.getter: asyncio.Future | None = None
        self.task = asyncio.ensure_future(self._pump(upstream))

    async def _pump(self, upstream) -> None:
        try:
            async for item in upstream:
                await self.queue.put(item)
        except Exception as exc:  # handed to the caller, as if the upstream raised there
            await self.queue.put(exc)
        finally:
            await upstream.aclose()

    async def next(self, ping: bool = True):
        """The next item, or KEEPALIVE after a quiet spell (when `ping`)."""
        while True:
            self.getter = self.getter or asyncio.ensure_future(self.queue.get())
            done, _ = await asyncio.wait({self.getter}, timeout=self.idle if ping else None)
            if done:
                item, self.getter = self.getter.result(), None
                if isinstance(item, Exception):
                    raise item
                return item
            if ping:
                return KEEPALIVE

    async def aclose(self) -> None:
        for task in (self.getter, self.task):
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(
            *(t for t in (self.getter, self.task) if t is not None), return_exceptions=True
        )
