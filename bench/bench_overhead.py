"""1. What the console adds to a call, and 5. to the time to first streamed token.

The same prompt goes (a) straight to a local OpenAI-compatible upstream with httpx and
(b) through the console under the production gunicorn config, via POST /api/v2/chat and
via the Sandbox run view, interleaved so that drift on the machine hits all alike.
"""

from __future__ import annotations

import json
import sys
import time

import httpx
from common import (
    Gunicorn,
    chat_payload,
    fast_setup,
    logged_in_client,
    percentiles,
    sandbox_form,
    save,
    table,
)

from tests.upstream import reply_load

N = int(sys.argv[1]) if len(sys.argv) > 1 else 500
STREAM_N = max(100, N // 3)
WARMUP = 30


def main() -> dict:
    upstream, model, token = fast_setup()
    server = Gunicorn()
    try:
        return measure(server, upstream, model, token)
    finally:
        server.stop()
        upstream.stop()


def measure(server, upstream, model, token) -> dict:
    body = {
        "model": "bench-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hi"},
        ],
        "max_tokens": 20,
    }
    direct = httpx.Client(base_url=upstream.url, timeout=30)
    api = httpx.Client(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    )
    ui = logged_in_client(server.url)
    chat = chat_payload(model)
    form = sandbox_form(model)

    def timed(fn) -> float:
        started = time.perf_counter()
        response = fn()
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (response.status_code, response.text[:300])
        return elapsed

    calls = {
        "direct": lambda: direct.post(
            "/v1/chat/completions",
            json=body,
            headers={"Authorization": "Bearer sk-bench-key-000000000"},
        ),
        "api": lambda: api.post("/api/v2/chat", json=chat),
        "sandbox": lambda: ui.post("/sandbox/run", data=form, headers={"HX-Request": "true"}),
    }
    for _ in range(WARMUP):
        for fn in calls.values():
            timed(fn)
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(N):
        for name, fn in calls.items():
            times[name].append(timed(fn))
    added = {
        name: [c - d for c, d in zip(times[name], times["direct"], strict=True)]
        for name in ("api", "sandbox")
    }
    results = {"requests_each": N, "latency_ms": {k: percentiles(v) for k, v in times.items()}}
    results["added_ms"] = {k: percentiles(v) for k, v in added.items()}
    results["ratio_p50"] = {
        k: round(results["latency_ms"][k]["p50"] / results["latency_ms"]["direct"]["p50"], 2)
        for k in ("api", "sandbox")
    }
    rows = [[k, v["p50"], v["p95"], v["p99"]] for k, v in results["latency_ms"].items()]
    table(
        f"Call latency, ms ({N} interleaved calls each, fast upstream)",
        rows,
        ["path", "p50", "p95", "p99"],
    )
    rows = [
        [k, v["p50"], v["p95"], v["p99"], results["ratio_p50"][k]]
        for k, v in results["added_ms"].items()
    ]
    table(
        "Added by the console, ms (target p50 <= 5, p99 <= 20)",
        rows,
        ["path", "p50", "p95", "p99", "ratio p50"],
    )

    # 5. time to first token, streamed
    upstream.handler = reply_load(latency=0.0, tokens=20, token_rate=200)
    ttft: dict[str, list[float]] = {"direct": [], "console": []}
    stream_body = dict(body, stream=True, stream_options={"include_usage": True})
    for i in range(STREAM_N + 10):
        started = time.perf_counter()
        first = None
        with direct.stream(
            "POST",
            "/v1/chat/completions",
            json=stream_body,
            headers={"Authorization": "Bearer sk-bench-key-000000000"},
        ) as r:
            for line in r.iter_lines():  # read to the end, noting the first token
                if first is None and '"content"' in line:
                    first = (time.perf_counter() - started) * 1000
        if i >= 10:
            ttft["direct"].append(first)
        started = time.perf_counter()
        first = None
        with ui.stream("POST", "/sandbox/stream", data=dict(form, stream="on")) as r:
            for line in r.iter_lines():
                if first is None and line.startswith("event: token"):
                    first = (time.perf_counter() - started) * 1000
        if i >= 10:
            ttft["console"].append(first)
    results["ttft_ms"] = {k: percentiles(v) for k, v in ttft.items()}
    results["ttft_added_ms"] = percentiles(
        [c - d for c, d in zip(ttft["console"], ttft["direct"], strict=True)]
    )
    rows = [[k, v["p50"], v["p95"], v["p99"]] for k, v in results["ttft_ms"].items()]
    rows.append(
        [
            "added",
            results["ttft_added_ms"]["p50"],
            results["ttft_added_ms"]["p95"],
            results["ttft_added_ms"]["p99"],
        ]
    )
    table(
        f"Time to first token, ms ({STREAM_N} streams each; target added <= 10)",
        rows,
        ["path", "p50", "p95", "p99"],
    )
    return results


if __name__ == "__main__":
    data = main()
    save("overhead", data)
    print(json.dumps({"added_ms": data["added_ms"], "ttft_added_ms": data["ttft_added_ms"]}))
