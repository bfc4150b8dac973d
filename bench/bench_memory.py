"""4. Memory: RSS of each gunicorn worker idle, and after rounds of calls (a leak check)."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from common import Gunicorn, UpstreamProcess, make_model, make_user, prepare_database, save, table

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
CALLS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000


def main() -> dict:
    prepare_database()
    upstream = UpstreamProcess(latency=0.0, tokens=50)
    user = make_user()
    model = make_model("Memory", f"{upstream.url}/v1")
    from integrations.team import tokens

    token = tokens.create(user, "bench")[1]
    # Worker recycling (max_requests) would hide a leak: off for this check.
    server = Gunicorn({"GUNICORN_MAX_REQUESTS": "0"})
    rows, results = [], {"rounds": []}
    try:
        idle = server.worker_rss_mb()
        results["idle_mb"] = [round(x, 1) for x in idle]
        rows.append(["idle", "", *[f"{x:.1f}" for x in idle]])
        clients = [
            httpx.Client(
                base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {token}"}
            )
            for _ in range(8)
        ]
        body = {"model": str(model.pk), "system": "Be brief.", "user": "Tell me a story. " * 20}

        def call(i: int) -> int:
            return clients[i % len(clients)].post("/api/v2/chat", json=body).status_code

        for round_no in range(1, ROUNDS + 1):
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=8) as pool:
                statuses = list(pool.map(call, range(CALLS)))
            assert statuses.count(200) == CALLS, {s: statuses.count(s) for s in set(statuses)}
            rss = server.worker_rss_mb()
            results["rounds"].append(
                {
                    "round": round_no,
                    "rss_mb": [round(x, 1) for x in rss],
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
            rows.append([f"after round {round_no}", CALLS, *[f"{x:.1f}" for x in rss]])
        first, last = results["rounds"][0]["rss_mb"], results["rounds"][-1]["rss_mb"]
        results["growth_after_first_round_mb"] = [
            round(b - a, 1) for a, b in zip(first, last, strict=False)
        ]
        table(
            f"RSS per gunicorn worker, MB ({ROUNDS} rounds of {CALLS} calls; target <= 150, no growth)",
            rows,
            ["when", "calls", *[f"worker {i + 1}" for i in range(len(idle))]],
        )
        print("growth from round 1 to round", ROUNDS, "MB:", results["growth_after_first_round_mb"])
    finally:
        server.stop()
        upstream.stop()
    return results


if __name__ == "__main__":
    save("memory", main())
