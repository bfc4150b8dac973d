"""A hostile upstream cannot take a worker's memory: every byte read counts against the cap.

Line reading used to assemble a whole SSE line before the cap applied, and gzip was
accepted, so about 4 MB on the wire grew a worker from 105 MB to 905 MB. Here an
upstream streams one endless line, plain and gzip-compressed (a megabyte of text per
kilobyte on the wire), and a JSON body that inflates the same way. Each call runs in a
console process of its own, whose peak memory is read before and after: it stays within
50 MB, and the call fails as classified, at once.
"""

from __future__ import annotations

import json
import time
import zlib

import pytest

from tests.conftest import OtherProcess

MB = 1024 * 1024


def endless(gzip: bool, content_type: str = "text/event-stream", seconds: float = 20.0):
    """Send "data: xxxx…" without ever ending the line, until the client goes."""

    def handle(rec, h):
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        if gzip:
            h.send_header("Content-Encoding", "gzip")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
        piece = b"x" * MB
        first = (
            b'data: {"choices": [{"delta": {"content": "'
            if content_type != "application/json"
            else b'{"a": "'
        )
        stop = time.monotonic() + seconds
        try:
            h.wfile.write(
                squeeze.compress(first) + squeeze.flush(zlib.Z_SYNC_FLUSH) if gzip else first
            )
            while time.monotonic() < stop:
                if gzip:
                    h.wfile.write(squeeze.compress(piece) + squeeze.flush(zlib.Z_SYNC_FLUSH))
                else:
                    h.wfile.write(piece[: 64 * 1024])
                h.wfile.flush()
        except OSError:
            pass  # the client refused the rest: what it should do

    return handle


PROBE = """
import asyncio, json, time
from integrations.llm import client
from integrations.llm.config import LLMConfig, Prompt

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

config = LLMConfig(endpoint="{url}/v1", model_id="m", timeout=30)
prompt = Prompt.of(user="hi")
client.call(LLMConfig(endpoint="{url}/warm/v1", model_id="m", timeout=5), prompt)  # imports
before, started = peak(), time.monotonic()
if "{how}" == "stream":
    result = list(client.stream(config, prompt))[-1]
elif "{how}" == "astream":
    async def run():
        return [item async for item in client.astream(config, prompt)][-1]
    result = asyncio.run(run())
else:
    result = client.call(config, prompt)
print(json.dumps([result.error.kind if result.error else "ok", peak() - before,
                  time.monotonic() - started]))
"""


@pytest.mark.parametrize("how", ["stream", "astream", "call"])
@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_an_endless_line_costs_a_worker_no_memory(how, gzip, upstream, db):
    content_type = "application/json" if how == "call" else "text/event-stream"
    hostile = endless(gzip, content_type)
    warm = endless(False, "application/json", seconds=0)
    upstream.handler = lambda rec, h: (warm if "/warm/" in rec.path else hostile)(rec, h)
    other = OtherProcess()
    try:
        kind, grown, took = json.loads(other.run(PROBE.format(url=upstream.url, how=how)))
    finally:
        other.close()
    assert kind in ("oversized", "bad_response"), kind
    assert grown < 50 * MB, f"the worker grew by {grown / MB:.0f} MB"
    assert took < 10, f"refusing took {took:.1f} s"
