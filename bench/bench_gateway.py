"""6. The gateway (/v1) beside a direct call to the same upstream, usage recording on.

(a) added latency of a non-streamed call, interleaved with the direct call, through each
    door (chat completions, Anthropic messages, Responses, embeddings: each translated
    from and to the same OpenAI-shaped upstream);
(b) added time to the first streamed token, through each streaming door;
(c) 256 simultaneous streamed calls on a 2 s upstream (1 s to the first token, then 20
    tokens at 20 a second), under the production gunicorn config, with the RSS of all
    workers together afterwards. Each call's first token says how long it waited to be
    admitted and sent on (the upstream sends it 1 s after the request arrives); the
    tokens after it flow at the upstream's pace;
(d) what metrics and tracing add (bench/observability.py);
(e) throughput and CPU per call with 32 clients on kept connections, and the whole
    server's memory before and after, and under `asgi` once the workers that served the
    load have idled and been replaced (bench/throughput.py; `PY_SPY=prefix` records a
    profile).
Each is measured under both server modes of config/gunicorn.conf.py: `wsgi` (gthread)
and `asgi` (uvicorn workers, the default; the gateway waits in the event loop).
The load average is printed beside each figure: on a busy machine the figures say so.

Usage: python bench_gateway.py [calls] (default 500)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import httpx
import observability
import throughput
from async_upstream import AsyncUpstreamProcess
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

from tests.upstream import reply_json, reply_load

N = int(sys.argv[1]) if len(sys.argv) > 1 else 500
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}
STREAM_N = max(100, N // 3)
BURST = 256
WARMUP = 30


def body(stream: bool = False) -> dict:
    data = {
        "model": "bench-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hi"},
        ],
        "max_tokens": 20,
    }
    if stream:
        data.update(stream=True, stream_options={"include_usage": True})
    return data


EMBEDDING = {"object": "list", "model": "bench-embed", "usage": {"prompt_tokens": 4, "total_tokens": 4},
             "data": [{"object": "embedding", "index": 0, "embedding": [0.01 * i for i in range(256)]}]}  # fmt: skip


def dispatch(rec, h):
    """The fast upstream: as many words as max_tokens asks, as one tool call's arguments
    when the request offers tools; one 256-dimension vector at /embeddings."""
    if rec.path.endswith("/embeddings"):
        return reply_json(EMBEDDING)(rec, h)
    sent = json.loads(rec.body or b"{}")
    return reply_load(tokens=sent.get("max_tokens") or 20, tool=bool(sent.get("tools")))(rec, h)


# Each door's call, asking the fast model what `body()` asks it; and how a stream's first
# text token looks in that door's format.
MESSAGES = {"model": "fast", "max_tokens": 20, "system": "Be brief.",
            "messages": [{"role": "user", "content": "Say hi"}]}  # fmt: skip
RESPONSES = {"model": "fast", "instructions": "Be brief.", "input": "Say hi",
             "max_output_tokens": 20, "store": False}  # fmt: skip
EMBED = {"model": "fast-embed", "input": "Say hi"}
DOORS = {
    "/v1/chat/completions": (dict(body(), model="fast"), dict(body(True), model="fast"), '"content": "tok'),
    "/v1/messages": (MESSAGES, dict(MESSAGES, stream=True), '"text": "tok'),
    "/v1/responses": (RESPONSES, dict(RESPONSES, stream=True), '"delta": "tok'),
}  # fmt: skip


def main() -> dict:
    prepare_database()
    fast = start_upstream(dispatch)
    slow = AsyncUpstreamProcess(latency=1.0, tokens=20, token_rate=20)
    quick = AsyncUpstreamProcess(latency=0, tokens=20)
    user = make_user()
    make_model("Fast", f"{fast.url}/v1").__class__.objects.filter(name="Fast").update(
        gateway_alias="fast"
    )
    embed = make_model("Fast embeddings", f"{fast.url}/v1", model_id="bench-embed")
    embed.__class__.objects.filter(pk=embed.pk).update(
        gateway_alias="fast-embed", kind="embeddings"
    )
    make_model("Slow", f"{slow.url}/v1", timeout=60).__class__.objects.filter(name="Slow").update(
        gateway_alias="slow"
    )
    make_model("Quick", f"{quick.url}/v1").__class__.objects.filter(name="Quick").update(
        gateway_alias="quick"
    )
    from integrations.gateway import keys

    raw = keys.create(user, "bench")[1]
    results: dict = {"threads_per_worker": os.environ.get("GUNICORN_THREADS", "default")}
    only = os.environ.get("BENCH_ONLY", "")
    modes = os.environ.get("BENCH_SERVERS", "wsgi,asgi").split(",")
    try:
        for mode in modes:
            if only not in ("observability", "throughput"):
                server = Gunicorn({"CONSOLE_SERVER": mode})
                try:
                    if only != "burst":
                        results[mode] = added(server, fast, raw, mode)
                    if only != "added":
                        results.setdefault(mode, {}).update(burst(server, raw, slow, mode))
                finally:
                    server.stop()
                fast.handler = dispatch
            if only in ("", "throughput"):
                # Idle workers are replaced only once the load is over: the gateway idles
                # while the direct calls run.
                idle = str(throughput.SECONDS + 8)
                server = Gunicorn({"CONSOLE_SERVER": mode, "GUNICORN_IDLE_REPLACE": idle})
                try:
                    results.setdefault(mode, {})["throughput"] = throughput.measure(
                        mode, server, quick.port, raw, dict(body(), model="quick")
                    )
                finally:
                    server.stop()
            if only in ("", "observability"):
                results.setdefault(mode, {})["observability"] = observability.measure(
                    mode, fast, raw, body(), N
                )
    finally:
        fast.stop()
        slow.stop()
        quick.stop()
    from integrations.models import UsageRecord

    results["usage_rows_written"] = UsageRecord.objects.count()
    save("gateway", results)
    return results


def added(server, upstream, raw: str, mode: str) -> dict:
    direct = httpx.Client(base_url=upstream.url, timeout=30)
    gateway = httpx.Client(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {raw}"}
    )
    upstream_auth = {"Authorization": "Bearer sk-bench-key-000000000"}

    def timed(fn) -> float:
        started = time.perf_counter()
        response = fn()
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (response.status_code, response.text[:300])
        return elapsed

    calls = {
        "direct": lambda: direct.post("/v1/chat/completions", json=body(), headers=upstream_auth),
        "gateway": lambda: gateway.post("/v1/chat/completions", json=dict(body(), model="fast")),
        "gateway, a tool call": lambda: gateway.post(
            "/v1/chat/completions", json=dict(body(), model="fast", tools=[LOOKUP])
        ),
        "gateway /v1/messages": lambda: gateway.post("/v1/messages", json=MESSAGES),
        "gateway /v1/responses": lambda: gateway.post("/v1/responses", json=RESPONSES),
        "direct /v1/embeddings": lambda: direct.post(
            "/v1/embeddings", json=dict(EMBED, model="bench-embed"), headers=upstream_auth
        ),
        "gateway /v1/embeddings": lambda: gateway.post("/v1/embeddings", json=EMBED),
    }
    for _ in range(WARMUP):
        for fn in calls.values():
            timed(fn)
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(N):
        for name, fn in calls.items():
            times[name].append(timed(fn))
    extra = [g - d for g, d in zip(times["gateway"], times["direct"], strict=True)]
    tools_extra = [
        g - d for g, d in zip(times["gateway, a tool call"], times["direct"], strict=True)
    ]

    def over(name: str, base: str = "direct") -> dict:
        return percentiles([g - d for g, d in zip(times[name], times[base], strict=True)])

    out = {
        "calls_each": N,
        "latency_ms": {k: percentiles(v) for k, v in times.items()},
        "added_ms": percentiles(extra),
        "added_tools_ms": percentiles(tools_extra),
        "added_by_door_ms": {
            "/v1/messages": over("gateway /v1/messages"),
            "/v1/responses": over("gateway /v1/responses"),
            "/v1/embeddings": over("gateway /v1/embeddings", "direct /v1/embeddings"),
        },
        "load_after_calls": load_average(),
    }
    rows = [[k, v["p50"], v["p95"], v["p99"]] for k, v in out["latency_ms"].items()]
    rows.append(["added", out["added_ms"]["p50"], out["added_ms"]["p95"], out["added_ms"]["p99"]])
    t = out["added_tools_ms"]
    rows.append(["added, a tool call", t["p50"], t["p95"], t["p99"]])
    for door, t in out["added_by_door_ms"].items():
        rows.append([f"added, {door}", t["p50"], t["p95"], t["p99"]])
    table(
        f"[{mode}] Non-streamed call through the gateway, ms ({N} interleaved; target added p50 <= 3, "
        f"p99 <= 10; load {out['load_after_calls']})",
        rows,
        ["path", "p50", "p95", "p99"],
    )

    upstream.handler = reply_load(latency=0.0, tokens=20, token_rate=200)  # TTFT: paced
    ttft: dict[str, list[float]] = {"direct": [], **{door: [] for door in DOORS}}

    def first_token(client, path, payload, marker, headers=None) -> float:
        started = time.perf_counter()
        first = None
        with client.stream("POST", path, json=payload, headers=headers) as r:
            for line in r.iter_lines():
                if first is None and marker in line.replace('":"', '": "'):
                    first = (time.perf_counter() - started) * 1000
        assert first is not None, path
        return first

    for i in range(STREAM_N + 10):
        d = first_token(
            direct, "/v1/chat/completions", body(True), '"content": "tok', upstream_auth
        )
        firsts = {door: first_token(gateway, door, s, m) for door, (_, s, m) in DOORS.items()}
        if i >= 10:
            ttft["direct"].append(d)
            for door, value in firsts.items():
                ttft[door].append(value)
    added_by = {
        door: percentiles([g - d for g, d in zip(ttft[door], ttft["direct"], strict=True)])
        for door in DOORS
    }
    out["ttft_ms"] = {k: percentiles(v) for k, v in ttft.items()}
    out["ttft_added_ms"] = added_by["/v1/chat/completions"]
    out["ttft_added_by_door_ms"] = added_by
    out["load_after_streams"] = load_average()
    rows = [[k, v["p50"], v["p95"]] for k, v in out["ttft_ms"].items()]
    for door, t in added_by.items():
        rows.append([f"added, {door}", t["p50"], t["p95"]])
    table(
        f"[{mode}] Time to first streamed token, ms ({STREAM_N} each; target added <= 5; "
        f"load {out['load_after_streams']})",
        rows,
        ["path", "p50", "p95"],
    )
    upstream.handler = dispatch
    out.update(per_chunk(direct, gateway, upstream_auth, mode))
    return out


CHUNKS = 400


def per_chunk(direct, gateway, upstream_auth, mode: str) -> dict:
    """What the gateway adds per streamed chunk: a stream of CHUNKS text chunks, and one
    of CHUNKS tool-call argument chunks, each beside the same stream read directly."""

    def read(client, payload, headers=None) -> float:
        started = time.perf_counter()
        with client.stream("POST", "/v1/chat/completions", json=payload, headers=headers) as r:
            for _ in r.iter_lines():
                pass
        return (time.perf_counter() - started) * 1000

    out: dict = {}
    rows = []
    for kind in ("text", "tool call"):
        payload = dict(body(True), max_tokens=CHUNKS)
        if kind != "text":
            payload["tools"] = [LOOKUP]
        added = []
        for i in range(40):
            d = read(direct, payload, upstream_auth)
            g = read(gateway, dict(payload, model="fast"))
            if i >= 5:
                added.append((g - d) / CHUNKS)
        out[f"per_chunk_added_{kind.replace(' ', '_')}_ms"] = percentiles(added)
        rows.append([kind, percentiles(added)["p50"], percentiles(added)["p95"]])
    rows.append(["tool call over text", round(rows[1][1] - rows[0][1], 4), ""])
    table(
        f"[{mode}] Added per streamed chunk, ms ({CHUNKS} chunks a stream; target: a tool-call "
        f"chunk <= 0.05 over a text chunk; load {load_average()})",
        rows,
        ["chunks", "p50", "p95"],
    )
    return out


async def _stream(port: int, payload: bytes, raw: str | None, first: list) -> bool:
    """One streamed call over a raw asyncio connection: httpx's async pool takes ~1.7 s
    of its own to run 256 streams at once on this machine, which would hide the console.
    Appends to `first` when the first token arrived (perf_counter)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: Bearer {raw}\r\n" if raw else ""
    writer.write(
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + payload
    )
    await writer.drain()
    done = False
    try:
        while line := await reader.readline():
            if not first and b"tok0" in line:
                first.append(time.perf_counter())
            if line.startswith(b"data: [DONE]"):
                done = True
                break
    finally:
        writer.close()
    return done


async def _burst(port: int, raw: str | None, model: str) -> tuple[float, list, list, list]:
    """Returns the wall time, each call's status, its latency and its time to first token
    (ms): the first token says how long the calls waited to be admitted and sent on."""
    payload = json.dumps(dict(body(True), model=model)).encode()
    statuses: list[int] = []
    latencies: list[float] = []
    firsts: list[float] = []

    async def one():
        started, first = time.perf_counter(), []
        try:
            statuses.append(200 if await _stream(port, payload, raw, first) else 0)
        except OSError:
            statuses.append(0)
        latencies.append((time.perf_counter() - started) * 1000)
        if first:
            firsts.append((first[0] - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*[one() for _ in range(BURST)])
    return time.perf_counter() - started, statuses, latencies, firsts


def burst(server, raw: str, upstream, mode: str) -> dict:
    out: dict = {}
    rows = []
    for phase in ("direct", "cold", "warm"):
        if phase == "direct":
            wall, statuses, latencies, firsts = asyncio.run(
                _burst(upstream.port, None, "bench-model")
            )
            rss, whole = [0.0], {"rss": 0.0, "pss": 0.0}
        else:
            wall, statuses, latencies, firsts = asyncio.run(_burst(server.port, raw, "slow"))
            rss, whole = server.worker_rss_mb(), server.server_mb()
        out[phase] = {
            "wall_s": round(wall, 2),
            "ok": statuses.count(200),
            "latency_ms": percentiles(latencies),
            "first_token_ms": percentiles(firsts),
            "rss_mb_all_workers": round(sum(rss), 1),
            "rss_mb_each": [round(r, 1) for r in rss],
            "server_mb": whole,
            "load": load_average(),
        }
        rows.append(
            [
                phase,
                f"{statuses.count(200)}/{BURST}",
                out[phase]["wall_s"],
                out[phase]["first_token_ms"]["p50"],
                out[phase]["first_token_ms"]["p99"],
                out[phase]["latency_ms"]["p50"],
                out[phase]["latency_ms"]["p99"],
                out[phase]["rss_mb_all_workers"],
                whole["pss"],
                out[phase]["load"],
            ]
        )
    table(
        f"[{mode}] {BURST} simultaneous streamed calls on a 2 s upstream, direct and through the gateway "
        "(target: all within 2.3 s; the whole server <= 250 MB: PSS of master and workers)",
        rows,
        [
            "burst",
            "ok",
            "wall s",
            "1st token p50",
            "p99",
            "end p50 ms",
            "p99",
            "RSS MB",
            "server PSS MB",
            "load 1/5/15 min",
        ],
    )
    return {"burst": out}


if __name__ == "__main__":
    main()
