"""Production server: `gunicorn -c config/gunicorn.conf.py` (the app is named below).

Two ways to serve, chosen by CONSOLE_SERVER (README, "Sizing the server"):
- `asgi` (the default): uvicorn workers (config/workers.py), one event loop per process.
  The gateway's calls (/v1) wait on their upstream in the loop, through the same guarded
  transport, and hold no thread. Pages, the REST API and the Sandbox run on Django's WSGI
  handler on a pool thread per request (config/asgi_pages.py), as fast as under `wsgi`
  (bench/bench_pages.py). A worker serves about three times the gateway calls per second
  of a gthread worker, and a 256-stream burst is faster and takes less memory.
- `wsgi`: gthread workers, a few processes (about one per core) with many threads each.
  An LLM call holds its thread while the upstream thinks. Give EACH worker as many
  threads as the peak number of calls in flight plus headroom for page views: the kernel
  does not spread connections evenly over the workers.
"""

import gc
import multiprocessing
import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
if os.environ.get("CONSOLE_SERVER", "asgi") == "wsgi":
    wsgi_app = "config.wsgi:application"
    worker_class = "gthread"
    threads = int(os.environ.get("GUNICORN_THREADS", 256))
    timeout = int(os.environ.get("GUNICORN_TIMEOUT", 330))  # past the longest upstream call
else:
    wsgi_app = "config.asgi:application"
    worker_class = "config.workers.ConsoleWorker"
    # Requests one worker takes at once; past it the worker answers 503 at once.
    worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", 2000))
    # Each worker listens on a socket of its own on the port (gunicorn binds one per
    # worker under reuse_port), and the kernel deals connections between them. On one
    # shared socket the worker whose loop woke first accepted every connection waiting:
    # 32 clients connecting at once landed 32 to 0 on one worker in 6 bursts of 20, and
    # that worker's core was the whole server's throughput.
    reuse_port = os.environ.get("GUNICORN_REUSE_PORT", "1") != "0"
    # A uvicorn worker tells the master it is alive from its loop: this is how long a
    # blocked loop may stay silent before the worker is restarted; no request is cut by it.
    timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, min(multiprocessing.cpu_count(), 4))))
graceful_timeout = 30
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 5))
# A worker is replaced after this many requests (a guard against slow leaks; the leak check
# in bench/bench_memory.py finds none). An event-loop worker serves hundreds of gateway
# calls a second: at 5,000 it was replaced every half minute, cutting its kept
# connections each time.
max_requests = int(
    os.environ.get("GUNICORN_MAX_REQUESTS", 5000 if worker_class == "gthread" else 200_000)
)
max_requests_jitter = max_requests // 10
# The master imports the console once and forks its workers from it: the code of every
# module (about half of what a worker holds at boot) is then shared between the workers
# rather than loaded into each (README, "Memory"). GUNICORN_PRELOAD=0 loads it in each
# worker, as a code reload (`kill -HUP`) then needs.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") != "0"
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn 25+ opens a control socket at one path in the home folder by default, so two
# consoles on one host took it from each other. Off unless a per-instance path is given.
_control = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not _control
if _control:
    control_socket = _control

# Prometheus' multiprocess mode: each worker writes its counts to files here, and a scrape
# of /metrics sums them (integrations/telemetry/views.py). Set before any worker imports
# prometheus_client, and emptied at each start: counts from a previous run must not add in.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="byo-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server):
    _refuse_an_address_in_use(server)
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def _refuse_an_address_in_use(server, attempts: int = 5):
    """Under reuse_port a second server started on the same address would not fail: it
    would join the port and take a share of its connections, whether it is another
    console or a stale copy of this one. So first bind each TCP address without the
    option, as a server without it would: a listener already there makes that fail.
    Like gunicorn's own bind, wait a few seconds for it to go (a restart in progress),
    then stop."""
    if not server.cfg.reuse_port or server.master_pid or os.environ.get("LISTEN_FDS"):
        return  # an upgrade (USR2) or systemd hands over sockets that are already ours
    import errno
    import socket
    import sys
    import time

    from gunicorn.util import is_ipv6

    for address in server.cfg.address:
        if not isinstance(address, tuple):
            continue  # a Unix socket: SO_REUSEPORT does not share one
        family = socket.AF_INET6 if is_ipv6(address[0]) else socket.AF_INET
        for _ in range(attempts):
            probe = socket.socket(family, socket.SOCK_STREAM)
            try:
                # SO_REUSEADDR lets the probe past connections of a previous run in
                # TIME_WAIT, never past a listener.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    break  # gunicorn's own bind reports any other error
                server.log.error("Connection in use: %s", address)
                time.sleep(1)
            finally:
                probe.close()
        else:
            server.log.error(
                "Another server is listening on %s:%s. Give this one its own "
                "GUNICORN_BIND, or stop the other first.",
                *address,
            )
            sys.exit(1)


def when_ready(server):
    """With preload, finish in the master what every worker would otherwise repeat: the
    URLconf with its views and the REST API's schemas. Then close what a fork must not
    share (database and cache connections) and freeze what boot made, so the collector
    never writes to those pages and they stay shared."""
    if not server.cfg.preload_app:
        return
    from django.db import connections
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018
    _import_what_workers_use()
    connections.close_all()
    _close_caches()
    gc.collect()
    gc.freeze()


def _import_what_workers_use():
    """What a worker imports as it starts serving, imported in the master instead: the
    cache's Redis client (which loads the OpenTelemetry metrics SDK when it is installed),
    the upstream clients' TLS contexts, and under asgi the event loop and anyio's backend
    (config/workers.py warms them)."""
    import contextlib
    import importlib

    from django.conf import settings
    from django.core.cache import caches

    from integrations.llm import transport

    transport._ssl_context(transport.ClientOptions())  # httpx's (proxied calls)
    transport._http1_context(transport.ClientOptions())  # the lean client's

    for alias in caches:
        caches.create_connection(alias)  # imports the backend's module; opens no socket
    for name in (
        "redis.asyncio",
        "anyio._backends._asyncio",
        "uvloop",
        "uvicorn.loops.uvloop",
        "uvicorn.protocols.http.httptools_impl",
        "uvicorn.protocols.http.h11_impl",
        "uvicorn.lifespan.off",
        "psycopg_pool",  # PostgreSQL's connection pool
        "encodings.idna",  # host names in TLS and URLs
        settings.MESSAGE_STORAGE.rpartition(".")[0],
        settings.SESSION_SERIALIZER.rpartition(".")[0],
    ):
        with contextlib.suppress(ImportError):  # an optional speed-up that is not installed
            importlib.import_module(name)


def _close_caches():
    from django.core.cache import caches

    for cache in caches.all(initialized_only=True):
        cache.close()


def child_exit(server, worker):
    """A worker that ended stops counting towards the live gauges (calls in flight, the
    usage queue); its counters stay in the sums, folded into one archive file."""
    from integrations.telemetry import files

    try:
        files.worker_ended(worker.pid, _metrics_dir)
    except OSError as exc:  # a full disk, say: the master must go on replacing workers
        server.log.warning("Metrics of worker %s not folded in: %s", worker.pid, exc)


def _recover_usage(worker):
    """Write the usage rows a killed worker left in the spool (a replaced worker starts
    here, before any request could start its writer)."""
    from django.conf import settings
    from django.db import close_old_connections

    if settings.USAGE_WRITE != "background":
        return
    from integrations.gateway import spool

    try:
        spool.recover()
    except Exception as exc:  # a database that is not up yet: the writer tries again
        worker.log.warning("Spooled usage rows not recovered yet: %s", exc)
    finally:
        close_old_connections()


def post_worker_init(worker):
    """Load before the first request what it would otherwise load while callers wait:
    the URLconf (the REST API builds its schemas on import: half a second of a first
    burst), and under gthread every thread with its cache connection (bench_gateway.py).
    Under asgi the worker warms its event loop's side itself (config/workers.py)."""
    import threading

    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (imports every view and the API)
    _recover_usage(worker)
    gc.freeze()  # what boot made lives as long as the worker: no collection rescans it
    pool = getattr(worker, "tpool", None)
    if pool is None:
        return
    count = worker.cfg.threads
    barrier = threading.Barrier(count, timeout=10)

    def warm():
        from django.core.cache import cache

        try:
            barrier.wait()  # every thread exists at once, so the pool makes them all
            cache.get("warm-up")
        except Exception as exc:  # a cache that is down, a broken barrier: start anyway
            worker.log.debug("Warm-up skipped: %s", exc)

    for _ in range(count):
        pool.submit(warm)
