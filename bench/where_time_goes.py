"""Where a gateway call's time goes, from a py-spy profile of a worker under load.

python bench/where_time_goes.py PROFILE.json [PROFILE.json ...]

Reads speedscope profiles (bench_gateway.py's throughput part records one per server
mode with PY_SPY=prefix) and charges each sample to a part of the call: the innermost
frame of the console's code, or of a library with a part of its own, decides (json's
encoder and Django's ORM count for whoever called them). Prints each part's share of the worker's busy time, and its milliseconds per
call when the number of calls the worker served is given as PROFILE.json:CALLS.
"""

from __future__ import annotations

import collections
import json
import sys

# (part, markers in a frame's file or name), the first that matches wins.
PARTS = [
    ("usage rows (metering, spool, the writer thread)", ("gateway/metering", "gateway/spool", "gateway/usage")),
    ("metrics and tracing", ("telemetry/", "llm/tracing", "prometheus_client")),
    ("scrubbing", ("llm/scrubber",)),
    ("the upstream client (HTTP to the model)", ("llm/transport", "llm/http1", "httpx/", "httpcore/", "h11/")),
    ("key, limits, route and generation look-ups (Redis)", ("gateway/admission", "gateway/keys", "gateway/limits", "gateway/routing", "gateway/cooldowns", "callcache", "redis/", "config/cache")),
    ("reading the request and writing the answer (doors, wires)", ("gateway/doors", "llm/wires", "llm/answers", "llm/client", "llm/chat", "llm/protocols", "llm/preview", "gateway/relay", "gateway/pump")),
    ("Django's handler, middleware and URL routing", ("django/", "config/middleware", "config/asgi", "asgiref/", "gateway/views", "gateway/outages")),
    ("HTTP server and event loop (uvicorn, uvloop, gunicorn)", ("uvicorn", "gunicorn", "httptools", "uvloop")),
]  # fmt: skip
STDLIB = "/lib/python3.11/"


def part_of(frames: list[dict]) -> str:
    """The part a sample belongs to, from its stack (outermost first): the innermost
    frame of the console's own code or of a library with a part of its own decides;
    the standard library, Django's ORM and asgiref count for whoever called them."""
    for frame in reversed(frames):
        where = f"{frame.get('file', '')} {frame['name']}"
        if (STDLIB in where and "site-packages" not in where) or any(
            m in where for m in ("django/", "asgiref/", "anyio/", "sniffio/")
        ):
            continue
        for part, markers in PARTS:
            if any(marker in where for marker in markers):
                return part
        return "other (libraries, garbage collection)"
    return "HTTP server and event loop (uvicorn, uvloop, gunicorn)"


def shares(path: str) -> tuple[dict[str, float], float]:
    with open(path) as f:
        data = json.load(f)
    frames = data["shared"]["frames"]
    spent: dict[str, float] = collections.Counter()
    for profile in data["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            spent[part_of([frames[i] for i in stack])] += weight
    return spent, sum(spent.values())


def main(args: list[str]) -> None:
    for arg in args:
        path, _, calls = arg.partition(":")
        spent, total = shares(path)
        print(f"\n{path}: {total:.2f} s of samples" + (f", {calls} calls" if calls else ""))
        for part, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
            per_call = f"{seconds / int(calls) * 1000:7.3f} ms" if calls else ""
            print(f"  {100 * seconds / total:5.1f} %  {per_call}  {part}")


if __name__ == "__main__":
    main(sys.argv[1:])
