"""Profile the gateway's ASGI path in-process: no server, no sockets on the caller's side.

python bench/profile_asgi.py [N] [concurrency] [profile]

Drives config.asgi.application with hand-made scopes on uvloop, against the fast local
upstream (bench/async_upstream.py), and prints the process CPU per call (what the
application itself costs, without uvicorn's HTTP parsing) and, with `profile`, cProfile's
top entries.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pstats
import sys
import time

from async_upstream import AsyncUpstreamProcess
from common import make_model, make_user, prepare_database


async def _call(app, body: bytes, auth: bytes) -> bytes:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", auth),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    sent = [{"type": "http.request", "body": body, "more_body": False}]
    out: list[bytes] = []
    status = []
    done = asyncio.Event()

    async def receive():
        if sent:
            return sent.pop()
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])
        else:
            out.append(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    await app(scope, receive, send)
    answer = b"".join(out)
    assert status == [200] and b"tok0" in answer, (status, answer[:300])
    return answer


def main(n: int, concurrency: int, profile: bool) -> None:
    prepare_database()
    upstream = AsyncUpstreamProcess(latency=0, tokens=20)
    user = make_user()
    make_model("Quick", f"{upstream.url}/v1").__class__.objects.filter(name="Quick").update(
        gateway_alias="quick"
    )
    from integrations.gateway import keys

    raw = keys.create(user, "profile")[1]
    from config.asgi import application

    body = json.dumps({"model": "quick", "max_tokens": 20,
                       "messages": [{"role": "user", "content": "Say hi"}]}).encode()  # fmt: skip
    auth = f"Bearer {raw}".encode()

    async def run(count: int) -> float:
        async def worker(k):
            for _ in range(k):
                await _call(application, body, auth)

        started = time.process_time()
        await asyncio.gather(*(worker(count // concurrency) for _ in range(concurrency)))
        return time.process_time() - started

    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(run(200))
    cpu = loop.run_until_complete(run(n))
    print(f"{n} calls, {concurrency} at once: {cpu / n * 1000:.3f} ms of CPU a call (process)")
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        loop.run_until_complete(run(n))
        profiler.disable()
        pstats.Stats(profiler).sort_stats(
            sys.argv[4] if len(sys.argv) > 4 else "tottime"
        ).print_stats(70)
    upstream.stop()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 2000, int(args[1]) if len(args) > 1 else 16, "profile" in args)
