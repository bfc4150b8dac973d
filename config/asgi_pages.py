"""Pages, the REST API and the Sandbox under `asgi`, served by Django's WSGI handler on a
pool thread: one hop to a thread per request, as under `wsgi`.

Django's own ASGI handler runs a synchronous view by giving each request a new thread and
hopping onto it for each middleware and back: about 5 ms more a page than `wsgi`, which
is why a host that served both once needed two instances. Here the whole request runs
where a gthread worker would run it: signals, middleware, view and the response's
closing in one thread, so its database connection opens and closes there too. A
streamed response (the Sandbox's server-sent events) is iterated in that same thread
and handed to the loop chunk by chunk, a few chunks ahead at most; a client that leaves
stops the iteration and the response is closed, as a WSGI server closes it.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.wsgi import WSGIHandler

# Threads for requests in progress; a streamed Sandbox run holds one while it streams.
THREADS = int(os.environ.get("ASGI_PAGE_THREADS", 64))
AHEAD = 8  # chunks a stream may be ahead of the client

_pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="page")
_handler = WSGIHandler()


async def read_body(receive):
    """The request body: in memory when it came in one message (most do), else spooled
    as Django does. RequestAborted when the client left first."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise RequestAborted()
    if not message.get("more_body", False):
        return io.BytesIO(message.get("body", b""))
    body_file = tempfile.SpooledTemporaryFile(  # noqa: SIM115  (closed by the caller)
        max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b"
    )
    body_file.write(message.get("body", b""))
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            body_file.close()
            raise RequestAborted()
        body_file.write(message.get("body", b""))
    body_file.seek(0)
    return body_file


def _latin1(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")  # PEP 3333's bytes-as-str


def environ_of(scope, body) -> dict:
    """The WSGI environ for an ASGI HTTP scope (after uvicorn applied the proxy headers)."""
    root = scope.get("root_path", "")
    path = scope["path"]
    if root and path.startswith(root):
        path = path[len(root) :]
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": _latin1(root),
        "PATH_INFO": _latin1(path),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] if server[1] is not None else 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope.get("headers", ()):
        name, value = raw_name.decode("latin-1").upper(), raw_value.decode("latin-1")
        if name == "CONTENT-TYPE":
            key = "CONTENT_TYPE"
        elif name == "CONTENT-LENGTH":
            key = "CONTENT_LENGTH"
        else:
            key = "HTTP_" + name.replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


class _Relay:
    """What the request's thread hands to the loop: the start, then body chunks, then the
    end, with at most AHEAD chunks waiting."""

    def __init__(self, loop):
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()
        self.room = threading.Semaphore(AHEAD)
        self.gone = threading.Event()

    def put(self, item) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def put_chunk(self, chunk: bytes) -> bool:
        """False once the client has left: the thread stops iterating."""
        while not self.room.acquire(timeout=1):
            if self.gone.is_set():
                return False
        if self.gone.is_set():
            return False
        self.put(("body", chunk))
        return True


def _run(environ, relay: _Relay) -> None:
    """In a pool thread: the whole request, as a WSGI server runs it."""
    started: list = []

    def start_response(status, headers, exc_info=None):
        started[:] = [status, headers]

    result = None
    try:
        result = _handler(environ, start_response)
        if not getattr(result, "streaming", False):
            body = b"".join(result)
            result.close()
            result = None
            relay.put(("whole", *started, body))
            return
        relay.put(("start", *started))
        for chunk in result:
            if chunk and not relay.put_chunk(chunk):
                break
    finally:
        if result is not None:
            result.close()  # request_finished: this thread's connections close
        relay.put(("end",))


def _start(status: str, headers) -> dict:
    return {
        "type": "http.response.start",
        "status": int(status.split(" ", 1)[0]),
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
    }


async def _listen(receive, relay: _Relay) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    relay.gone.set()


async def pages(scope, receive, send) -> None:
    try:
        body = await read_body(receive)
    except RequestAborted:
        return
    relay = _Relay(asyncio.get_running_loop())
    work = relay.loop.run_in_executor(_pool, _run, environ_of(scope, body), relay)
    listening = None
    try:
        while True:
            item = await relay.queue.get()
            kind = item[0]
            if kind == "whole":
                _, status, headers, content = item
                await send(_start(status, headers))
                await send({"type": "http.response.body", "body": content})
            elif kind == "start":
                await send(_start(item[1], item[2]))
                listening = asyncio.ensure_future(_listen(receive, relay))
            elif kind == "body":
                relay.room.release()
                if not relay.gone.is_set():
                    await send({"type": "http.response.body", "body": item[1], "more_body": True})
            else:  # the end
                if listening is not None and not relay.gone.is_set():
                    await send({"type": "http.response.body", "body": b""})
                break
        await work  # raises what the thread raised (Django answers errors itself)
    finally:
        relay.gone.set()
        if listening is not None:
            listening.cancel()
        body.close()
