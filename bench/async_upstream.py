"""A fast load-test upstream for bursts: asyncio, one process, keep-alive, OpenAI-shaped.

tests/upstream.py's threaded server is exact but slow to serve hundreds of streams at
once (256 streams of a 2 s answer take it ~3.8 s on 2 cores), which would measure the
harness, not the console. This one answers every request after `latency` seconds and
streams `tokens` words at `token_rate` a second, or answers JSON when not asked to stream.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import socket


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def _handle(reader, writer, latency: float, tokens: int, token_rate: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = json.loads(await reader.readexactly(length) or b"{}") if length else {}
            if b"/models" in head.split(b"\r\n", 1)[0]:
                payload = json.dumps({"data": [{"id": "bench-model"}]}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
                continue
            await asyncio.sleep(latency)
            usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}
            if body.get("stream"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                for i in range(tokens):
                    delta = {"choices": [{"index": 0, "delta": {"content": f"tok{i} "}}]}
                    writer.write(_chunk(f"data: {json.dumps(delta)}\n\n".encode()))
                    await writer.drain()
                    await asyncio.sleep(1 / token_rate)
                end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                tail = f"data: {json.dumps(end)}\n\ndata: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n"
                writer.write(_chunk(tail.encode()) + b"0\r\n\r\n")
            else:
                text = "".join(f"tok{i} " for i in range(tokens))
                payload = json.dumps(
                    {
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}
                        ],
                        "usage": usage,
                    }
                ).encode()  # fmt: skip
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def _serve(port_queue, latency: float, tokens: int, token_rate: float) -> None:
    async def main():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        server = await asyncio.start_server(
            lambda r, w: _handle(r, w, latency, tokens, token_rate), sock=sock, backlog=1024
        )
        port_queue.put(sock.getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class AsyncUpstreamProcess:
    def __init__(self, latency: float = 1.0, tokens: int = 20, token_rate: float = 20):
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        self.proc = ctx.Process(
            target=_serve, args=(queue, latency, tokens, token_rate), daemon=True
        )
        self.proc.start()
        self.port = queue.get(timeout=30)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(timeout=5)
