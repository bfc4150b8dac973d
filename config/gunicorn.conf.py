"""Production server: `gunicorn -c config/gunicorn.conf.py config.wsgi`.

An LLM call holds its thread for as long as the upstream takes (seconds, sometimes
minutes) while using almost no CPU. So we run a few processes (about one per core)
with many threads each, and a slow upstream only ties up its own thread.
Sizing rule: give EACH worker as many threads as the peak number of calls in flight
plus headroom for page views. The kernel does not spread connections evenly over the
workers (bench/bench_concurrency.py saw one worker take 40 of 64), so threads =
peak / workers leaves calls queued behind a busy worker. Threads are cheap here: an
idle one costs a few hundred KB. Override with WEB_CONCURRENCY and GUNICORN_THREADS.
256 threads a worker: bench/bench_gateway.py runs 256 simultaneous streamed gateway calls
(2 s each) on 2 workers in about 2.5 s with about 240 MB of RSS for both. At 160 a worker
that accepted more than its share queued the rest for a whole call (4.3 s); at 64 the
burst took 8.5 s.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, min(multiprocessing.cpu_count(), 4))))
threads = int(os.environ.get("GUNICORN_THREADS", 256))
# Longer than the longest allowed upstream call (LLM_MAX_TIMEOUT, 300 s by default).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 330))
graceful_timeout = 30
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 5))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 5000))
max_requests_jitter = 500
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn 25+ opens a control socket at one path in the home folder by default, so two
# consoles on one host took it from each other. Off unless a per-instance path is given.
_control = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not _control
if _control:
    control_socket = _control


def post_worker_init(worker):
    """Make a worker's threads, and each thread's cache connection, before its first
    request: otherwise the first burst after boot pays for them (bench_gateway.py)."""
    import threading

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
