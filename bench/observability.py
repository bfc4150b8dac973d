"""bench_gateway.py (d): what metrics and tracing add to a gateway call.

Three consoles run side by side under the same server mode, and each iteration calls
the upstream directly and then each console once, in a shuffled order, so all four see
the same moment of the machine:
- `bare`: METRICS_ENABLED=0, no OTEL_EXPORTER_OTLP_ENDPOINT;
- `metrics`: the default (Prometheus counters in gunicorn's multiprocess files);
- `metrics + tracing`: as above, and spans exported over OTLP/HTTP to a receiver here.
Target: metrics and tracing add <= 0.3 ms to the added p50; tracing off adds nothing.
"""

from __future__ import annotations

import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from common import Gunicorn, load_average, percentiles, table


class Receiver:
    """An OTLP/HTTP endpoint that takes every export and counts the bytes."""

    def __init__(self):
        self.received = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                receiver.received += len(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def measure(mode: str, upstream, raw: str, body: dict, calls: int, warmup: int = 30) -> dict:
    receiver = Receiver()
    configs = {
        "bare": {"METRICS_ENABLED": "0"},
        "metrics": {},
        "metrics + tracing": {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url},
    }
    servers = {name: Gunicorn({"CONSOLE_SERVER": mode, "WEB_CONCURRENCY": "1", **env})
               for name, env in configs.items()}  # fmt: skip
    upstream_auth = {"Authorization": "Bearer sk-bench-key-000000000"}
    direct = httpx.Client(base_url=upstream.url, timeout=30)
    clients = {name: httpx.Client(base_url=s.url, timeout=30, headers={"Authorization": f"Bearer {raw}"})
               for name, s in servers.items()}  # fmt: skip
    try:
        times: dict[str, list[float]] = {"direct": [], **{name: [] for name in servers}}

        def timed(client, path, payload, headers=None) -> float:
            started = time.perf_counter()
            response = client.post(path, json=payload, headers=headers)
            assert response.status_code == 200, response.text[:200]
            return (time.perf_counter() - started) * 1000

        order = list(clients)
        for i in range(warmup + calls):
            d = timed(direct, "/v1/chat/completions", body, upstream_auth)
            # A new order each time: the console called right after another would find
            # that one's after-response work (its usage writer) still on the CPUs.
            random.shuffle(order)
            each = {name: timed(clients[name], "/v1/chat/completions", dict(body, model="fast"))
                    for name in order}  # fmt: skip
            if i >= warmup:
                times["direct"].append(d)
                for name, value in each.items():
                    times[name].append(value)
        time.sleep(1.5)  # the last spans' batch
    finally:
        for server in servers.values():
            server.stop()
        receiver.stop()
    added = {name: percentiles([g - d for g, d in zip(times[name], times["direct"], strict=True)])
             for name in servers}  # fmt: skip
    out = {
        "calls_each": calls,
        "added_ms": added,
        "metrics_cost_p50_ms": round(added["metrics"]["p50"] - added["bare"]["p50"], 3),
        "metrics_and_tracing_cost_p50_ms": round(
            added["metrics + tracing"]["p50"] - added["bare"]["p50"], 3
        ),
        "otlp_bytes_received": receiver.received,
        "load": load_average(),
    }
    rows = [[name, t["p50"], t["p95"], t["p99"]] for name, t in added.items()]
    rows.append(["metrics cost, p50", out["metrics_cost_p50_ms"], "", ""])
    rows.append(["metrics + tracing cost, p50", out["metrics_and_tracing_cost_p50_ms"], "", ""])
    table(
        f"[{mode}] Added per call with metrics and tracing, ms ({calls} interleaved; target cost "
        f"<= 0.3; {receiver.received:,} bytes of spans exported)",
        rows,
        ["console", "p50", "p95", "p99"],
    )
    return out
