"""The production worker: uvicorn's, inside gunicorn, with the console's limits."""

from __future__ import annotations

from uvicorn_worker import UvicornWorker


class ConsoleWorker(UvicornWorker):
    """One event loop per process (uvloop, httptools).

    The gateway's calls wait on their upstream in the loop and hold no thread. Pages, the
    Sandbox and the REST API are synchronous Django views: each request runs on a thread
    of its own (asgiref makes one per request) for as long as it takes. `worker_connections`
    caps what one worker takes at once; past it the worker answers 503 at once, where the
    old thread pool queued calls behind slow ones.
    """

    CONFIG_KWARGS = {"loop": "auto", "http": "auto", "lifespan": "off"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config.limit_concurrency = self.cfg.worker_connections

    def init_process(self):

        pass
        super().init_process()
