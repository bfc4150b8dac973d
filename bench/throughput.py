"""(e) of bench_gateway.py: throughput and CPU with 32 clients on kept connections.

32 clients each keep one HTTP/1.1 connection open and send non-streamed calls one after
another for a fixed time, first straight to the upstream, then through the gateway. The
figures: calls a second, the workers' CPU seconds per 1,000 calls (user + system, read
from /proc before and after), and the memory of all workers and of the whole server
before and after the load, and (under `asgi`) once its idle workers were replaced.

The upstream is bench/async_upstream.py (one asyncio process, answers at once), so it is
not the bottleneck; the clients share the machine with the console, as they would with
any peer measured the same way. `PY_SPY=path.svg` records the busiest worker with
py-spy while the load runs (what README's "Where a call's time goes" is made from).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import load_average, percentiles, table

CLIENTS = 32
SECONDS = float(os.environ.get("THROUGHPUT_SECONDS", 10))


async def _client(port: int, request: bytes, until: float, latencies: list, errors: list):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length, chunked = None, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                body = b""
                while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
                    body += (await reader.readexactly(size + 2))[:-2]
                await reader.readuntil(b"\r\n")
            else:
                body = await reader.readexactly(length or 0)
            if status != b"200" or b"tok0" not in body:
                errors.append((status, body[:200]))
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        writer.close()


def _request(path: str, payload: dict, auth: str) -> bytes:
    data = json.dumps(payload).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


async def _load(port: int, request: bytes, seconds: float) -> tuple[int, list, list]:
    latencies: list[float] = []
    errors: list = []
    until = time.perf_counter() + seconds
    await asyncio.gather(
        *[_client(port, request, until, latencies, errors) for _ in range(CLIENTS)]
    )
    return len(latencies), latencies, errors


def _cpu_seconds(pids: list[int]) -> list[float]:
    """Each process's CPU seconds so far (user + system)."""
    tick = os.sysconf("SC_CLK_TCK")
    each = []
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        each.append((int(fields[11]) + int(fields[12])) / tick)  # utime, stime
    return each


def measure(mode: str, server, upstream_port: int, raw: str, payload: dict) -> dict:
    """Run the load direct, then through `server`; returns the figures and prints them."""
    direct = _request("/v1/chat/completions", dict(payload, model="bench-model"), "sk-bench")
    gateway = _request("/v1/chat/completions", payload, raw)
    asyncio.run(_load(server.port, gateway, 2))  # warm every worker's caches
    time.sleep(1)
    idle_rss = round(sum(server.worker_rss_mb()), 1)
    idle = server.server_mb()
    out: dict = {"clients": CLIENTS, "seconds": SECONDS, "rss_mb_idle": idle_rss,
                 "server_mb_idle": idle}  # fmt: skip
    rows = []
    for name, port, request in (
        ("direct", upstream_port, direct),
        ("gateway", server.port, gateway),
    ):
        pids = server.worker_pids()
        before = _cpu_seconds(pids)
        spy = None
        if name == "gateway" and os.environ.get("PY_SPY"):
            spy = _record(pids, f"{os.environ['PY_SPY']}-{mode}")
        started = time.perf_counter()
        calls, latencies, errors = asyncio.run(_load(port, request, SECONDS))
        wall = time.perf_counter() - started
        each = [after - first for after, first in zip(_cpu_seconds(pids), before, strict=True)]
        cpu = sum(each)
        if spy is not None:
            spy.wait()
        assert not errors, errors[:3]
        figures = {
            "calls": calls,
            "calls_per_s": round(calls / wall, 1),
            "latency_ms": percentiles(latencies),
            "worker_cpu_s_per_1000": round(cpu / calls * 1000, 3) if name == "gateway" else None,
            "load": load_average(),
            # How the work fell on the workers: the kernel hands each kept connection to
            # whichever worker accepts it first, and a run where one worker took most of
            # them is bound by that worker's core.
            "worker_cpu_split": [round(c / cpu, 2) if cpu else 0 for c in each],
        }
        out[name] = figures
        rows.append([name, calls, figures["calls_per_s"], figures["latency_ms"]["p50"],
                     figures["latency_ms"]["p99"], figures["worker_cpu_s_per_1000"] or "",
                     "/".join(f"{c:.2f}" for c in figures["worker_cpu_split"]) if name == "gateway" else "",
                     figures["load"]])  # fmt: skip
    out["rss_mb_after"] = round(sum(server.worker_rss_mb()), 1)
    after = out["server_mb_after"] = server.server_mb()
    replaced = out["server_mb_replaced"] = _after_idle_replacement(server, pids)
    table(
        f"[{mode}] {CLIENTS} clients on kept connections, {SECONDS:g} s each (targets: >= 1,000 "
        f"calls/s, <= 1.2 CPU s per 1,000 calls); RSS of all workers {idle_rss} MB idle, "
        f"{out['rss_mb_after']} MB after; the whole server (master and workers) PSS "
        f"{idle['pss']} MB idle, {after['pss']} MB after, {replaced.get('pss', '-')} MB once "
        f"its idle workers were replaced (RSS added up {idle['rss']}, {after['rss']}, "
        f"{replaced.get('rss', '-')})",
        rows,
        [
            "path",
            "calls",
            "calls/s",
            "p50 ms",
            "p99 ms",
            "CPU s / 1,000",
            "CPU split",
            "load 1/5/15 min",
        ],
    )
    return out


def _after_idle_replacement(server, pids: list[int]) -> dict:
    """The whole server's memory once every worker that served the load has idled past
    GUNICORN_IDLE_REPLACE and been replaced by a fresh fork (asgi only: {} otherwise)."""
    idle = float(server.env.get("GUNICORN_IDLE_REPLACE", 0))
    if server.env.get("CONSOLE_SERVER") != "asgi" or idle <= 0:
        return {}
    deadline = time.monotonic() + idle + 60
    while set(server.worker_pids()) & set(pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # the fresh workers' warm-up
    return server.server_mb() if not set(server.worker_pids()) & set(pids) else {}


def _record(pids: list[int], target: str):
    """py-spy on the worker that will be busiest (any: the kernel spreads connections)."""
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pids[0]), "--duration", str(int(SECONDS) - 1),
         "--rate", "500", "--format", "speedscope", "--output", f"{target}.json", "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
