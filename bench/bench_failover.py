"""Routes under the production server: the failover matrix's score and what a route costs.

1. The 16 failover scenarios of tests/gateway/failover.py (the same code the test suite
   runs), against gunicorn in each server mode: how many pass.
2. Added latency, interleaved, against one fast local upstream:
   - a plain model vs a route over it (target: the route adds <= 0.2 ms p50);
   - a route whose first target refuses connections (never cooled, so every call pays
     the refusal) vs the second target called alone through the gateway (target: <= + 5
     ms p50), and vs a direct call to it.

    ../.venv/bin/python bench_failover.py [calls]
"""

from __future__ import annotations

import os
import sys
import time

import httpx
from common import (
    Gunicorn,
    load_average,
    make_model,
    make_user,
    percentiles,
    prepare_database,
    save,
    start_upstream,
    table,
)

from tests.gateway import failover
from tests.upstream import Upstream

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
WARMUP = 30


def scenarios(url: str, user) -> dict:
    from integrations.models import Integration, Route

    Route.objects.filter(name=failover.ROUTE).delete()  # the world of a mode run before
    Integration.objects.filter(name__startswith="Up ").delete()
    a, b = Upstream().start(), Upstream().start()
    try:
        world = failover.build(url, user, a, b)
        results = {}
        for name, check in failover.SCENARIOS.items():
            started = time.perf_counter()
            problem = check(world)
            results[name] = {"ok": problem == "", "problem": problem,
                             "seconds": round(time.perf_counter() - started, 2)}  # fmt: skip
        return results
    finally:
        a.stop()
        b.stop()


def costs(url: str, raw: str, upstream) -> dict:
    direct = httpx.Client(base_url=upstream.url, timeout=30)
    gateway = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {raw}"})
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    auth = {"Authorization": "Bearer sk-bench-key-000000000"}
    calls = {
        "direct": lambda: direct.post(
            "/v1/chat/completions", json=dict(body, model="bench-model"), headers=auth
        ),
        "model": lambda: gateway.post("/v1/chat/completions", json=dict(body, model="fast")),
        "route": lambda: gateway.post("/v1/chat/completions", json=dict(body, model="pair")),
        "route, first refuses": lambda: gateway.post(
            "/v1/chat/completions", json=dict(body, model="refusing-first")
        ),
    }

    def timed(fn) -> float:
        started = time.perf_counter()
        response = fn()
        assert response.status_code == 200, response.text[:300]
        return (time.perf_counter() - started) * 1000

    for _ in range(WARMUP):
        for fn in calls.values():
            timed(fn)
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(N):
        for name, fn in calls.items():
            times[name].append(timed(fn))

    def over(name, base):
        return percentiles([x - y for x, y in zip(times[name], times[base], strict=True)])

    return {
        "latency_ms": {k: percentiles(v) for k, v in times.items()},
        "route_over_model_ms": over("route", "model"),
        "refusing_first_over_direct_ms": over("route, first refuses", "direct"),
        "refusing_first_over_route_ms": over("route, first refuses", "route"),
    }


def main() -> dict:
    prepare_database()
    from integrations.models import CustomModel, Route, RouteTarget

    user = make_user()
    upstream = start_upstream(failover.good("bench-model"))
    fast = make_model("Fast", f"{upstream.url}/v1")
    CustomModel.objects.filter(pk=fast.pk).update(gateway_alias="fast")
    dead = make_model("Dead", f"http://127.0.0.1:{failover.closed_port()}/v1", timeout=5)
    pair = Route.objects.create(name="pair")
    RouteTarget.objects.create(route=pair, model=fast, position=0)
    refusing = Route.objects.create(name="refusing-first", failures_to_cool=1000,
                                    retry_same=[], move_on=["refused"])  # fmt: skip
    RouteTarget.objects.create(route=refusing, model=dead, position=0)
    RouteTarget.objects.create(route=refusing, model=fast, position=1)
    from integrations.gateway import keys

    raw = keys.create(user, "bench")[1]
    results: dict = {}
    for mode in os.environ.get("BENCH_SERVERS", "wsgi,asgi").split(","):
        server = Gunicorn({"CONSOLE_SERVER": mode})
        try:
            measured = costs(server.url, raw, upstream)
            matrix = scenarios(server.url, user)
        finally:
            server.stop()
        passed = sum(r["ok"] for r in matrix.values())
        results[mode] = {"scenarios": matrix, "passed": passed, **measured}
        rows = [[name, "pass" if r["ok"] else "FAIL " + r["problem"][:60], r["seconds"]]
                for name, r in matrix.items()]  # fmt: skip
        table(f"[{mode}] Failover scenarios: {passed}/{len(matrix)} pass", rows,
              ["scenario", "result", "s"])  # fmt: skip
        rows = [[k, v["p50"], v["p95"], v["p99"]] for k, v in measured["latency_ms"].items()]
        for label, key in (("route over model (target <= 0.2)", "route_over_model_ms"),
                           ("first refuses, over the second alone (target <= 5)",
                            "refusing_first_over_route_ms"),
                           ("first refuses, over direct", "refusing_first_over_direct_ms")):  # fmt: skip
            t = measured[key]
            rows.append([label, t["p50"], t["p95"], t["p99"]])
        table(f"[{mode}] Route cost, ms ({N} interleaved; load {load_average()})", rows,
              ["path", "p50", "p95", "p99"])  # fmt: skip
    upstream.stop()
    save("failover", results)
    return results


if __name__ == "__main__":
    main()
