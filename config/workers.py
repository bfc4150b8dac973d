"""The production worker under CONSOLE_SERVER=asgi: uvicorn's, inside gunicorn."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import sys
import time

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

# Requests that say nothing of use: a load balancer's health checks and Prometheus'
# scrapes (config/urls.py) come every few seconds and would keep every worker "busy".
MONITORING = frozenset({"/healthz", "/metrics"})
# Read when the master loads this class, so a value that is not a number stops the start.
IDLE_REPLACE = float(os.environ.get("GUNICORN_IDLE_REPLACE", 300))
# When a worker last began being replaced for idling (0 when its replacement serves).
# Made here, in the master, when gunicorn loads this class; every worker shares it.
_REPLACING = multiprocessing.Value("d", 0.0)


class ConsoleWorker(UvicornWorker):
    """One event loop per process (uvloop and httptools when installed).

    The gateway's calls wait on their upstream in the loop and hold no thread. Pages, the
    Sandbox and the REST API are synchronous Django views: each request runs on a thread
    of config/asgi_pages.py's pool (ASGI_PAGE_THREADS) for as long as it takes.
    `worker_connections` caps what one worker takes at once: past it the worker answers
    503 at once, where a thread pool would queue calls behind slow ones. A worker that
    served calls and then idles is replaced by a fresh fork (GUNICORN_IDLE_REPLACE).
    """

    # No WebSockets: the console serves none, and uvicorn's default loads a library for them.
    CONFIG_KWARGS = {"loop": "auto", "http": "auto", "ws": "none", "lifespan": "off"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config.limit_concurrency = self.cfg.worker_connections
        self.in_flight = 0
        self.served = False
        self.last_active = time.monotonic()

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
        """uvicorn_worker's own _serve, with the warm-up first, the application wrapped to
        count what it serves, and a watch that replaces the worker once it idles."""
        await self._warm_up()
        self.config.app = self._counted(self.wsgi)
        server = Server(config=self.config)
        self._install_sigquit_handler()
        watch = asyncio.create_task(self._replace_when_idle(server))
        await server.serve(sockets=self.sockets)
        watch.cancel()
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def _counted(self, app):
        async def counted(scope, receive, send):
            if scope["type"] != "http" or scope["path"] in MONITORING:
                return await app(scope, receive, send)
            self.in_flight += 1
            self.served = True
            try:
                return await app(scope, receive, send)
            finally:
                self.in_flight -= 1
                self.last_active = time.monotonic()

        return counted

    async def _replace_when_idle(self, server: Server) -> None:
        """Give back what serving made private. A worker that has served calls holds its
        own copy of every page of the master's it wrote to (reference counts, warmed-up
        bytecode: about 20 MB a worker), and keeps it while it idles. Once it has served no
        call for GUNICORN_IDLE_REPLACE seconds, it ends, as a max_requests recycle does,
        and the master forks a fresh one that shares those pages again. One worker at a
        time, and never the only one: the others keep the port while it is replaced."""
        while not server.started:
            await asyncio.sleep(0.05)
        with _REPLACING.get_lock():
            _REPLACING.value = 0.0  # serving: another worker may take its turn
        if IDLE_REPLACE <= 0 or self.cfg.workers < 2:
            return
        while not server.should_exit:
            await asyncio.sleep(min(IDLE_REPLACE / 4, 15))
            idle = time.monotonic() - self.last_active
            if self.served and not self.in_flight and idle >= IDLE_REPLACE and _my_turn():
                self.log.info("Worker idle for %.0f s after serving calls: replacing it", idle)
                server.should_exit = True

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


def _my_turn(wait: float = 60) -> bool:
    """Whether no other worker is being replaced (one that began over a minute ago and
    never served again does not hold the turn)."""
    now = time.monotonic()
    with _REPLACING.get_lock():
        if _REPLACING.value and now - _REPLACING.value < wait:
            return False
        _REPLACING.value = now
        return True
