"""A lean HTTP/1.1 client for the event loop's upstream calls, on transport's checked
sockets.

A profile of the gateway under 32 clients (README, "Where a call's time goes") put a
third of a call's CPU in httpx and httpcore: request and response models, a pool that
re-checks every connection, and h11's event machinery around a few bytes of framing.
This speaks the same HTTP/1.1 with fewer layers: one write for the request, the head
parsed once, the body's framing (length, chunked, or to the close) read as it arrives.

What it keeps from transport.py, by calling it: names resolved and every address
checked before connecting to exactly that address (_AsyncGuardedBackend), the TLS
context and its CA bundle, the call's deadline and first-token deadline on every read
and write (_AsyncSocketStream), and httpx's exception types, which _guarded classifies.
What it adds: the head is capped (64 KiB), as are a chunk's size line and trailers.
Proxied calls and HTTP/2 stay on httpx; this client offers only http/1.1 in TLS.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import httpcore
import httpx

from config.loops import loop_local

HEAD_LIMIT = 64 * 1024
LINE_LIMIT = 4 * 1024
READ_SIZE = 64 * 1024
IDLE_PER_ORIGIN = 64  # kept-alive connections per origin per loop; more are closed
_NO_BODY = (204, 304)


class Connection:
    """One socket to an origin, with what has been read and not yet used."""

    __slots__ = ("stream", "buffer", "origin")

    def __init__(self, stream, origin: tuple):
        self.stream, self.buffer, self.origin = stream, b"", origin

    async def fill(self, timeout: float | None) -> bool:
        data = await self.stream.read(READ_SIZE, timeout)
        self.buffer += data
        return bool(data)

    async def line(self, timeout: float | None, limit: int = LINE_LIMIT) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > limit:
                raise httpcore.RemoteProtocolError("A line of the answer's framing is too long.")
            if not await self.fill(timeout):
                raise httpcore.RemoteProtocolError("The server closed the connection.")
        line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
        return line

    def reusable(self) -> bool:
        return not self.buffer and not self.stream.get_extra_info("is_readable")

    async def close(self) -> None:
        await self.stream.aclose()


class Response:
    """What the client reads of an answer: status, headers, and the raw body."""

    def __init__(self, connection: Connection, status: int, headers: list, keep: bool,
                 framing: str, length: int, read_timeout: float | None, pool: dict):  # fmt: skip
        self.status_code = status
        self.headers = httpx.Headers(headers)
        self._connection: Connection | None = connection
        self._keep, self._framing, self._left = keep, framing, length
        self._timeout, self._pool = read_timeout, pool

    @property
    def is_redirect(self) -> bool:
        return 300 <= self.status_code < 400 and "location" in self.headers

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            return
        with httpx._transports.default.map_httpcore_exceptions():
            if self._framing == "length":
                async for part in self._sized(connection):
                    yield part
            elif self._framing == "chunked":
                async for part in self._chunked(connection):
                    yield part
            else:  # to the close
                while True:
                    if connection.buffer:
                        part, connection.buffer = connection.buffer, b""
                        yield part
                    if not await connection.fill(self._timeout):
                        break
        await self._done()

    async def _sized(self, connection: Connection) -> AsyncIterator[bytes]:
        while self._left > 0:
            if not connection.buffer and not await connection.fill(self._timeout):
                raise httpcore.RemoteProtocolError("The server closed the connection mid-body.")
            part = connection.buffer[: self._left]
            connection.buffer = connection.buffer[len(part) :]
            self._left -= len(part)
            yield part

    async def _chunked(self, connection: Connection) -> AsyncIterator[bytes]:
        while True:
            size_line = (await connection.line(self._timeout)).split(b";", 1)[0].strip()
            try:
                self._left = int(size_line, 16)
            except ValueError:
                raise httpcore.RemoteProtocolError("A chunk's size is not hexadecimal.") from None
            if self._left < 0:  # int() takes a sign
                raise httpcore.RemoteProtocolError("A chunk's size is negative.")
            if self._left == 0:
                break
            async for part in self._sized(connection):
                yield part
            if await connection.line(self._timeout):
                raise httpcore.RemoteProtocolError("A chunk does not end where its size says.")
        trailers = 0
        while line := await connection.line(self._timeout):
            trailers += len(line)
            if trailers > HEAD_LIMIT:
                raise httpcore.RemoteProtocolError("The answer's trailers are too long.")

    async def _done(self) -> None:
        """The body was read to its end: the connection goes back to the pool if kept."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        idle = self._pool.setdefault(connection.origin, [])
        if self._keep and connection.reusable() and len(idle) < IDLE_PER_ORIGIN:
            idle.append(connection)
        else:
            await connection.close()

    async def aclose(self) -> None:
        """Close an answer not read to its end: its connection is closed, not kept."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()


def _pool(key) -> dict:
    return loop_local(("http/1.1 connections", key), dict)


async def send(
    backend, context: ssl.SSLContext | None, key, method: str, url: httpx.URL,
    headers: dict[str, str], content: bytes | None, limits: httpx.Timeout,
) -> Response:  # fmt: skip
    """Send one request and read the answer's head; the body is read from the Response."""
    pool = _pool(key)
    port = url.port or (443 if url.scheme == "https" else 80)
    origin = (url.scheme, url.host, port)
    with httpx._transports.default.map_httpcore_exceptions():
        connection = None
        idle = pool.get(origin)
        while idle:
            candidate = idle.pop()
            if candidate.reusable():
                connection = candidate
                break
            await candidate.close()
        if connection is None:
            stream = await backend.connect_tcp(url.host, port, timeout=limits.connect)
            if url.scheme == "https":
                try:
                    stream = await stream.start_tls(
                        context, server_hostname=url.host, timeout=limits.connect
                    )
                except BaseException:
                    await stream.aclose()
                    raise
            connection = Connection(stream, origin)
        try:
            await connection.stream.write(_head(method, url, port, headers, content), limits.write)
            return await _answer(connection, method, limits.read, pool)
        except BaseException:
            await connection.close()
            raise


def _head(method: str, url: httpx.URL, port: int, headers: dict, content: bytes | None) -> bytes:
    default_port = 443 if url.scheme == "https" else 80
    host = url.host if ":" not in url.host else f"[{url.host}]"
    lines = [f"{method} {url.raw_path.decode('ascii')} HTTP/1.1"]
    given = {name.lower() for name in headers}
    if "host" not in given:
        lines.append(f"Host: {host}" if port == default_port else f"Host: {host}:{port}")
    for name, value in headers.items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise httpcore.LocalProtocolError(f"Header {name[:40]!r} holds a line break.")
        lines.append(f"{name}: {value}")
    if content is not None and "content-length" not in given:
        lines.append(f"Content-Length: {len(content)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + content if content else head


async def _answer(connection: Connection, method: str, timeout, pool: dict) -> Response:
    while True:  # a 1xx answer (100 Continue) is followed by the real one
        while (end := connection.buffer.find(b"\r\n\r\n")) < 0:
            if len(connection.buffer) > HEAD_LIMIT:
                raise httpcore.RemoteProtocolError("The answer's headers are too long.")
            if not await connection.fill(timeout):
                raise httpcore.RemoteProtocolError("The server closed the connection.")
        if end > HEAD_LIMIT:
            raise httpcore.RemoteProtocolError("The answer's headers are too long.")
        head, connection.buffer = connection.buffer[:end], connection.buffer[end + 4 :]
        status_line, *header_lines = head.split(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        code = rest[:3]
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise httpcore.RemoteProtocolError("The answer's status line is malformed.")
        status = int(code)
        if status >= 200:
            break
    headers = []
    for line in header_lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name:
            raise httpcore.RemoteProtocolError("An answer header is malformed.")
        headers.append((name, value.strip()))
    return _framed(connection, method, status, version, headers, timeout, pool)


def _framed(connection, method, status, version, headers, timeout, pool) -> Response:
    lowered = {}
    for name, value in headers:
        lowered.setdefault(name.lower(), []).append(value.lower())
    tokens = b",".join(lowered.get(b"connection", [])).replace(b" ", b"").split(b",")
    keep = version == b"HTTP/1.1" and b"close" not in tokens
    if method == "HEAD" or status in _NO_BODY:
        return Response(connection, status, headers, keep, "length", 0, timeout, pool)
    if b"chunked" in b",".join(lowered.get(b"transfer-encoding", [])):
        return Response(connection, status, headers, keep, "chunked", 0, timeout, pool)
    lengths = set(lowered.get(b"content-length", []))
    if len(lengths) > 1 or (lengths and not next(iter(lengths)).isdigit()):
        raise httpcore.RemoteProtocolError("The answer's Content-Length is malformed.")
    if lengths:
        length = int(next(iter(lengths)))
        return Response(connection, status, headers, keep, "length", length, timeout, pool)
    return Response(connection, status, headers, False, "close", 0, timeout, pool)
