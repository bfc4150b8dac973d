"""The production worker under CONSOLE_SERVER=asgi: uvicorn's, inside gunicorn."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys

from uvicorn_worker import UvicornWorker


class ConsoleWorker(UvicornWorker):
    """One event loop per process (uvloop and httptools when installed).

    The gateway's calls wait on their upstream in the loop and hold no thread. Pages, the
    Sandbox and the REST API are synchronous Django views: each request runs on a thread
    of config/asgi_pages.py's pool (ASGI_PAGE_THREADS) for as long as it takes.
    `worker_connections` caps what one worker takes at once: past it the worker answers
    503 at once, where a thread pool would queue calls behind slow ones.
    """

    # No WebSockets: the console serves none, and uvicorn's default loads a library for them.
    CONFIG_KWARGS = {"loop": "auto", "http": "auto", "ws": "none", "lifespan": "off"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config.limit_concurrency = self.cfg.worker_connections

    def init_signals(self):
        super().init_signals()
        # uvicorn stops serving on SIGTERM, then raises the signal again. Under the default
        # handler the process would die right there, before Python's exit handlers run,
        # and the usage rows still queued for the writer thread would be lost on every
        # restart and every max_requests recycle. Exit normally instead.
        signal.signal(signal.SIGTERM, self._exit_normally)

    @staticmethod
    def _exit_normally(signum, frame):
        sys.exit(0)

    async def _serve(self) -> None:
        await self._warm_up()
        await super()._serve()

    async def _warm_up(self) -> None:
        """The loop's own connections, before the first burst pays for them: Redis (the
        gateway's admission reads it on the loop), the upstream clients with their TLS
        contexts (loading the CA store takes ~30 ms), and anyio's event-loop backend, which
        httpcore's pool imports on its first request (~0.2 s of a first burst's CPU)."""
        import anyio
        from django.core.cache import cache

        from integrations.llm import transport

        transport._async_client(transport.ClientOptions())  # proxied calls
        transport._http1_context(transport.ClientOptions())  # the lean client's TLS
        anyio.Event().set()
        async with anyio.Lock():
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0)
        try:
            await asyncio.gather(*(cache.aget("warm-up") for _ in range(4)))
        except Exception as exc:  # a cache that is down: start anyway
            self.log.debug("Warm-up skipped: %s", exc)
        gc.freeze()  # what boot made lives as long as the worker: no collection rescans it
