"""Pages and the REST API under each server mode, side by side: what a page costs under
`wsgi` and under `asgi` (where pages run on Django's WSGI handler on a pool thread,
config/asgi_pages.py), interleaved so that drift on the machine hits both alike.

    ../.venv/bin/python bench_pages.py [rounds]
"""

from __future__ import annotations

import os
import sys
import time

from common import (
    Gunicorn,
    fast_setup,
    load_average,
    logged_in_client,
    percentiles,
    sandbox_form,
    save,
    table,
)

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
WARMUP = 20


def main() -> dict:
    upstream, model, token = fast_setup()
    modes = os.environ.get("BENCH_SERVERS", "wsgi,asgi").split(",")
    servers = {mode: Gunicorn({"CONSOLE_SERVER": mode, "WEB_CONCURRENCY": "1"}) for mode in modes}
    try:
        return measure(servers, model, token)
    finally:
        for server in servers.values():
            server.stop()
        upstream.stop()


def measure(servers: dict, model, token: str) -> dict:
    clients = {mode: logged_in_client(server.url) for mode, server in servers.items()}
    api = {"Authorization": f"Bearer {token}"}
    requests = {
        "catalog (GET /)": lambda c: c.get("/"),
        "Sandbox page": lambda c: c.get("/sandbox/"),
        "GET /api/v2/llms": lambda c: c.get("/api/v2/llms", headers=api),
        "static file": lambda c: c.get("/static/css/app.css"),
        "Sandbox run (a call)": lambda c: c.post("/sandbox/run", data=sandbox_form(model)),
    }

    def timed(fn, client) -> float:
        started = time.perf_counter()
        response = fn(client)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (response.status_code, response.text[:300])
        return elapsed

    for _ in range(WARMUP):
        for fn in requests.values():
            for client in clients.values():
                timed(fn, client)
    times = {(mode, name): [] for mode in clients for name in requests}
    for i in range(N):
        for name, fn in requests.items():
            order = list(clients.items())
            if i % 2:
                order.reverse()  # neither mode always goes first
            for mode, client in order:
                times[(mode, name)].append(timed(fn, client))
    results: dict = {"rounds": N, "load": load_average()}
    rows = []
    for name in requests:
        row = [name]
        for mode in clients:
            p = percentiles(times[(mode, name)])
            results.setdefault(mode, {})[name] = p
            row.append(f"{p['p50']:.2f} / {p['p95']:.2f}")
        rows.append(row)
    header = ["request"] + [f"{mode} p50 / p95 (ms)" for mode in clients]
    table(f"Pages, one worker each, {N} interleaved rounds", rows, header)
    save("pages", results)
    return results


if __name__ == "__main__":
    main()
