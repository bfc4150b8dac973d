"""The production worker under CONSOLE_SERVER=asgi: uvicorn's, inside gunicorn."""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
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
        self.sockets = [*self._own_listeners(), *self.sockets]
        await super()._serve()

    def _own_listeners(self) -> list[socket.socket]:
        """A listening socket of this worker's own on each TCP address gunicorn bound
        (SO_REUSEPORT, which the master's socket has too: config/gunicorn.conf.py).

        On the one socket all workers share, the worker whose loop wakes first accepts
        every connection waiting: 32 clients connecting at once landed 32 to 0 on one
        worker in 6 bursts of 20, and that worker's core was the whole server's
        throughput. The kernel deals connections between the sockets of one port by
        their address, so each worker gets its share. The workers go on accepting on the
        shared socket too (its share of connections must be served, and a socket closed
        with connections waiting resets them)."""
        own = []
        for listener in self.sockets:
            family = listener.family
            if family not in (socket.AF_INET, socket.AF_INET6) or not self.cfg.reuse_port:
                continue
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind(listener.getsockname())
                sock.listen(self.cfg.backlog)
            except OSError as exc:  # the shared socket still serves
                self.log.warning("No listening socket of this worker's own: %s", exc)
                sock.close()
                continue
            sock.setblocking(False)
            own.append(sock)
        return own

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
