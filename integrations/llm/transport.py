"""The one place that opens sockets to an upstream.

- http and https only; no redirects followed; no cookies kept; no proxy from the
  environment unless one is configured on the integration.
- Every resolved address is checked, and the socket is opened to the address that
  was checked (a custom httpcore network backend), so DNS rebinding has no window.
  Link-local and cloud metadata addresses are always refused; loopback and private
  ranges only where settings allow them.
- A connect timeout, an overall deadline that also holds against a body (or headers)
  trickled one byte at a time, and a cap on the response size.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import ipaddress
import itertools
import socket
import ssl
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy

import anyio
import httpcore
import httpx
from django.conf import settings

from config.loops import loop_local
from integrations.llm import http1, inputs
from integrations.llm.errors import LLMError

USER_AGENT = "byollm-console/0.1"
# Compressed answers are refused or inflated under the cap (_Body): ask for none.
_DEFAULT_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Never reachable, whatever the settings say.
ALWAYS_BLOCKED = [
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # link-local, AWS/GCP/Azure/OpenStack metadata
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "168.63.129.16/32",  # Azure wire server
        "0.0.0.0/8",  # "this host": reaches loopback on Linux
        "::/128",
        "224.0.0.0/4",  # multicast
        "ff00::/8",
        "255.255.255.255/32",
    )
]
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)
# A route's first-token timeout: reads before a stream's first token must also end by
# it (a slow first token fails over while nothing has reached the caller); cleared by
# first_token_seen() once the first token is in.
_first_token: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "first_token", default=None
)


def expect_first_token(seconds: float | None) -> None:
    """In the current context, a stream's first token must come within `seconds`."""
    _first_token.set(None if seconds is None else time.monotonic() + seconds)


def first_token_seen() -> None:
    if _first_token.get() is not None:
        _first_token.set(None)


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _allowlisted(ip: IPAddress, host: str) -> bool:
    for entry in settings.LLM_ALLOWED_NETWORKS:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            if entry.lower().rstrip(".") == host.lower().rstrip("."):
                return True
    return False


def address_refusal(ip: IPAddress, host: str = "") -> str | None:
    """Return why an address may not be reached, or None if it may."""
    candidates = [ip]
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        candidates.append(embedded)
    for candidate in candidates:
        if any(candidate in net for net in ALWAYS_BLOCKED if net.version == candidate.version):
            return f"{ip} is a link-local, metadata or reserved address"
    for candidate in candidates:
        if _allowlisted(candidate, host):
            continue
        if candidate.is_loopback:
            if not settings.LLM_ALLOW_LOOPBACK:
                return f"{ip} is a loopback address"
        elif candidate.is_private or candidate in SHARED_ADDRESS_SPACE:
            if not settings.LLM_ALLOW_PRIVATE:
                return f"{ip} is a private address"
        elif candidate.is_reserved or candidate.is_unspecified or candidate.is_multicast:
            return f"{ip} is a reserved address"
    return None


def resolve_checked(host: str, port: int) -> list[str]:
    """Resolve host and return its addresses, refusing if any of them is not allowed.

    getaddrinfo also parses the odd IPv4 spellings (0x7f.0.0.1, 2130706433, 0177.1),
    so what is checked is what the socket would reach.
    """
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise LLMError("dns", f"Cannot resolve host {host!r}.") from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0]).split("%")[0]
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise LLMError("dns", f"Host {host!r} has no address.")
    for address in addresses:
        reason = address_refusal(ipaddress.ip_address(address), host)
        if reason:
            raise LLMError("blocked", f"Refused to connect to {host}: {reason}.")
    return addresses


def _remaining(timeout: float | None, exc: type[Exception]) -> float | None:
    deadline, first = _deadline.get(), _first_token.get()
    if first is not None and (deadline is None or first < deadline):
        if first - time.monotonic() <= 0:
            raise exc("first token deadline reached")
        deadline = first
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise exc("overall deadline reached")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write also respects the call's deadline."""

    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        inner = self._inner.start_tls(
            ssl_context, server_hostname, _remaining(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.SyncBackend):
    """Resolve, check, then connect to exactly the address that was checked."""

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        addresses = resolve_checked(host, port)
        timeout = _remaining(timeout, httpcore.ConnectTimeout)
        last_error: OSError | None = None
        for address in addresses:
            try:
                sock = socket.create_connection((address, port), timeout)
            except TimeoutError as exc:
                raise httpcore.ConnectTimeout(str(exc)) from exc
            except OSError as exc:
                last_error = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return _DeadlineStream(httpcore._backends.sync.SyncStream(sock))
        raise httpcore.ConnectError(str(last_error)) from last_error


class _AsyncSocketStream(httpcore.AsyncNetworkStream):
    """An upstream connection on the event loop, on asyncio's own streams, with the
    call's overall deadline on every step (as _DeadlineStream does for threads).

    httpcore's default (anyio) wraps each read and write in a cancel scope and connects
    through a task group: relaying a token stream spent ~15% of a worker's time there.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader, self._writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        timeout = _remaining(timeout, httpcore.ReadTimeout)
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout("timed out reading") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        timeout = _remaining(timeout, httpcore.WriteTimeout)
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout("timed out writing") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        timeout = _remaining(timeout, httpcore.ConnectTimeout)
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._writer.transport.abort()
            raise httpcore.ConnectTimeout("timed out in the TLS handshake") from exc
        except (OSError, ssl.SSLError) as exc:
            self._writer.transport.abort()
            raise httpcore.ConnectError(str(exc)) from exc
        return self

    def get_extra_info(self, info: str):
        if info == "is_readable":  # httpcore asks before reusing a kept-alive connection
            # The transport reads eagerly: what an idle connection was sent (stray bytes,
            # or its end) waits in the reader's buffer, not in the socket.
            return (
                bool(self._reader._buffer)
                or self._reader.at_eof()
                or self._writer.transport.is_closing()
            )
        names = {
            "ssl_object": "ssl_object",
            "client_addr": "sockname",
            "server_addr": "peername",
            "socket": "socket",
        }
        return self._writer.get_extra_info(names[info]) if info in names else None


async def _connect(address: str, port: int, timeout: float | None) -> _AsyncSocketStream:
    """Connect to exactly this address (no name is looked up here)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_connect(sock, (address, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader, writer = await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
    return _AsyncSocketStream(reader, writer)


async def _resolve_checked_async(host: str, port: int) -> list[str]:
    """resolve_checked without blocking the event loop: a literal address needs no lookup."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return await anyio.to_thread.run_sync(resolve_checked, host, port)
    return resolve_checked(host, port)


class _AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    """_GuardedBackend for the event loop: resolve, check, connect to what was checked."""

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        addresses = await _resolve_checked_async(host, port)
        timeout = _remaining(timeout, httpcore.ConnectTimeout)
        last_error: OSError | None = None
        for address in addresses:
            try:
                return await _connect(address, port, timeout)
            except TimeoutError as exc:
                raise httpcore.ConnectTimeout(str(exc)) from exc
            except OSError as exc:
                last_error = exc
        # asyncio words a refusal "Connect call failed"; say it as the threaded client does.
        refused = isinstance(last_error, ConnectionRefusedError)
        message = "Connection refused" if refused else str(last_error)
        raise httpcore.ConnectError(message) from last_error

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("Unix sockets are not upstreams.")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class ClientOptions:
    verify_tls: bool = True
    ca_bundle: str = ""
    proxy_url: str = ""


_clients: dict[ClientOptions, list[httpx.Client]] = {}
_clients_lock = threading.Lock()
_turn = itertools.count()
# httpcore's pool checks every connection it holds for every request it assigns (the
# threaded one with a poll() each), so one pool with hundreds of calls at once spent
# seconds of CPU on bookkeeping (a profile of a 256-stream burst: 8.5 million is_idle
# calls, 4.2 s for what takes 2.1 s). Calls are dealt round a few small pools instead;
# each keeps its own keep-alive connections.
SHARDS = 16
SHARD_CONNECTIONS = 128  # a call past this many in one pool waits for a free one
SHARD_KEEPALIVE = SHARD_CONNECTIONS // 8


@functools.lru_cache(maxsize=64)
def _ssl_context(options: ClientOptions, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """The TLS context for these options, made once per process: loading the CA store
    takes ~30 ms and ~1 MB, and a context serves any thread and loop (the server's
    master makes the default ones before it forks, so its workers share them). httpcore
    sets the ALPN of a context httpx is given, so the lean client's, `alpn` set, is
    another."""
    context = ssl.create_default_context()
    if alpn:
        context.set_alpn_protocols(list(alpn))
    if options.ca_bundle.strip():
        try:
            context.load_verify_locations(cadata=options.ca_bundle)
        except (ssl.SSLError, ValueError, TypeError) as exc:  # TypeError: not ASCII
            raise LLMError("config", "The CA bundle is not valid PEM.") from exc
    if not options.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _transport_settings(options: ClientOptions, context: ssl.SSLContext) -> dict:
    return {
        "verify": context,
        "http2": True,
        "proxy": options.proxy_url or None,
        "trust_env": False,
        "limits": httpx.Limits(
            max_connections=SHARD_CONNECTIONS, max_keepalive_connections=SHARD_KEEPALIVE
        ),
    }


def _client_settings() -> dict:
    """What every client to an upstream keeps to: no redirects, no cookies, no environment."""
    return {
        "follow_redirects": False,
        "trust_env": False,
        "cookies": CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        "headers": _DEFAULT_HEADERS,
    }


def _client(options: ClientOptions) -> httpx.Client:
    """Return one of the pooled clients for these TLS and proxy options, in turn."""
    shards = _clients.get(options)
    if shards is None:
        with _clients_lock:
            shards = _clients.get(options)
            if shards is None:
                context = _ssl_context(options)  # loading the CA store takes ~30 ms: once
                shards = []
                for _ in range(SHARDS):
                    transport = httpx.HTTPTransport(**_transport_settings(options, context))
                    transport._pool._network_backend = _GuardedBackend()
                    shards.append(httpx.Client(transport=transport, **_client_settings()))
                _clients[options] = shards
    return shards[next(_turn) % SHARDS]


def _async_client(options: ClientOptions) -> httpx.AsyncClient:
    """Return one of the running loop's pooled clients for these options, in turn (a
    client belongs to the loop that made it)."""

    def make() -> list[httpx.AsyncClient]:
        context = _ssl_context(options)
        shards = []
        for _ in range(SHARDS):
            transport = httpx.AsyncHTTPTransport(**_transport_settings(options, context))
            transport._pool._network_backend = _AsyncGuardedBackend()
            shards.append(httpx.AsyncClient(transport=transport, **_client_settings()))
        return shards

    return loop_local(("upstream clients", options), make)[next(_turn) % SHARDS]


# The parsed form of each upstream URL the event loop has called: a URL is parsed once,
# not on every call (httpx's parse and merge were a tenth of a gateway call's CPU).
_urls: dict[str, httpx.URL] = {}
_URLS_KEPT = 1024


def _parsed(url: str) -> httpx.URL:
    parsed = _urls.get(url)
    if parsed is None:
        if len(_urls) >= _URLS_KEPT:
            _urls.clear()
        parsed = _urls[url] = httpx.URL(url)
    return parsed


def _with_defaults(headers: dict[str, str]) -> dict[str, str]:
    """The caller's headers over the client's defaults (names compared as HTTP does)."""
    given = {name.lower() for name in headers}
    return {**{k: v for k, v in _DEFAULT_HEADERS.items() if k.lower() not in given}, **headers}


async def _send_async(
    options: ClientOptions, method: str, url: str, headers: dict, content, limits
):
    """One request on the event loop: by the lean HTTP/1.1 client (http1.py) on the
    loop's own kept connections, or through a pooled httpx client's transport when a
    proxy carries it. Both send the client's defaults under the caller's headers, keep
    no cookies and follow no redirects."""
    parsed = _parsed(url)
    headers = _with_defaults(headers)
    if not options.proxy_url:
        context = _http1_context(options) if parsed.scheme == "https" else None
        return await http1.send(
            _ASYNC_BACKEND, context, options, method, parsed, headers, content, limits
        )
    client = _async_client(options)
    request = httpx.Request(
        method, parsed, headers=headers, content=content, extensions={"timeout": limits.as_dict()}
    )
    response = await client._transport.handle_async_request(request)
    response.request = request
    return response


_ASYNC_BACKEND = _AsyncGuardedBackend()


def _http1_context(options: ClientOptions) -> ssl.SSLContext:
    """The options' TLS context for the lean client, which speaks only http/1.1."""
    return _ssl_context(options, ("http/1.1",))


def check_url(url: str, what: str = "URL") -> tuple[str, int]:
    """Return (host, port) of an http(s) URL, or raise invalid_url."""
    try:
        parsed = inputs.parse_url(url, what, allow_credentials=what == "proxy URL")
    except inputs.InputError as exc:
        raise LLMError("invalid_url", str(exc)) from exc
    return parsed.host, parsed.port


@dataclass
class RawResponse:
    status_code: int
    headers: httpx.Headers
    body: bytes
    elapsed_ms: int


def _classify_transport_error(exc: Exception) -> LLMError:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    text = " ".join(str(e) for e in chain)
    if isinstance(exc, httpx.TimeoutException):
        first = _first_token.get()
        if first is not None and time.monotonic() >= first - 0.01:
            return LLMError(
                "timeout", "No first token came within the route's first-token timeout."
            )
        phase = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for the answer"
        return LLMError("timeout", f"Timed out while {phase}.")
    if any(isinstance(e, ssl.SSLError) for e in chain) or "CERTIFICATE_VERIFY_FAILED" in text:
        return LLMError("tls", "TLS handshake failed: the certificate could not be verified.")
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return LLMError("refused", "Connection refused.")
    if isinstance(exc, httpx.ProxyError):
        return LLMError("connection", "The proxy refused or failed the request.")
    if isinstance(exc, httpx.RemoteProtocolError):
        return LLMError("connection", "The server closed the connection or broke the protocol.")
    return LLMError("connection", "The connection failed.")


def release_database_connection() -> None:
    """Give a pooled database connection back before waiting on an upstream.

    An LLM call holds its thread for seconds; holding a PostgreSQL connection for as long
    ran the server out of connections under load. With a pool, the next query checks a
    connection out again in microseconds. Inside a transaction nothing is released.
    """
    from django.db import connection

    pooled = connection.settings_dict.get("OPTIONS", {}).get("pool")
    if pooled and connection.connection is not None and not connection.in_atomic_block:
        connection.close()


def _check_target(url: str, options: ClientOptions) -> None:
    """Refuse a target before anything is sent (this may block on DNS)."""
    host, port = check_url(url)
    if options.proxy_url:
        # The proxy resolves the target; refuse literal or resolvable blocked targets anyway.
        check_url(options.proxy_url, "proxy URL")
        try:
            resolve_checked(host, port)
        except LLMError as exc:
            if exc.kind != "dns":
                raise


def _timeouts(timeout: float) -> tuple[float, httpx.Timeout]:
    timeout = min(timeout, settings.LLM_MAX_TIMEOUT)
    return timeout, httpx.Timeout(timeout, connect=min(settings.LLM_CONNECT_TIMEOUT, timeout))


def _refuse_redirect(response: httpx.Response) -> None:
    if response.is_redirect or 300 <= response.status_code < 400:
        target = response.headers.get("location", "(no Location header)")
        raise LLMError(
            "redirect",
            f"The endpoint answered {response.status_code} redirecting to {target}.",
            status=response.status_code,
        )


def _as_llm_error(exc: Exception) -> LLMError:
    if isinstance(exc, httpx.InvalidURL):
        return LLMError("invalid_url", f"The URL is not valid: {exc}.")
    return _classify_transport_error(exc)


TRANSPORT_ERRORS = (httpx.InvalidURL, httpx.HTTPError, httpcore.TimeoutException, OSError)


@contextmanager
def _guarded(timeout: float) -> Iterator[httpx.Timeout]:
    """One call's deadline, and every transport failure as a classified LLMError; both
    the threaded and the event-loop streams below run inside it."""
    timeout, limits = _timeouts(timeout)
    token = _deadline.set(time.monotonic() + timeout)
    try:
        yield limits
    except LLMError:
        raise
    except TRANSPORT_ERRORS as exc:
        raise _as_llm_error(exc) from exc
    finally:
        _deadline.reset(token)


@contextmanager
def open_stream(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    content: bytes | None,
    timeout: float,
    options: ClientOptions,
) -> Iterator[httpx.Response]:
    """Send a request and yield the response with its body unread, under the guard.

    Raises LLMError for every network failure, a redirect, or a refused address.
    The deadline covers connecting, sending, and reading the body while the caller
    iterates inside the `with` block.
    """
    _check_target(url, options)
    release_database_connection()
    client = _client(options)
    with (
        _guarded(timeout) as limits,
        client.stream(method, url, headers=headers, content=content, timeout=limits) as r,
    ):
        _refuse_redirect(r)
        yield r


@asynccontextmanager
async def open_stream_async(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    content: bytes | None,
    timeout: float,
    options: ClientOptions,
) -> AsyncIterator[httpx.Response]:
    """open_stream on the running event loop: the same guard, deadline and errors."""
    if options.proxy_url:
        await anyio.to_thread.run_sync(_check_target, url, options)
    else:
        _check_target(url, options)  # no DNS without a proxy: the backend resolves
    with _guarded(timeout) as limits:
        r = await _send_async(options, method, url, headers, content, limits)
        try:
            _refuse_redirect(r)
            yield r
        finally:
            await r.aclose()


# After an answer's end ([DONE]), the rest of its body (the chunked terminator, usually in
# the same packet) is read under a short deadline so the connection goes back to the
# pool. Closing it instead cost the next call a connect, and with TLS a handshake.
DRAIN_SECONDS = 0.05
DRAIN_BYTES = 64 * 1024


@contextmanager
def _draining() -> Iterator[None]:
    token = _deadline.set(time.monotonic() + DRAIN_SECONDS)
    try:
        yield
    except TRANSPORT_ERRORS:
        pass  # the answer is whole; this connection is closed rather than kept
    finally:
        _deadline.reset(token)


def finish(lines: Iterator[str]) -> None:
    """Read out a finished stream's remaining lines (see DRAIN_SECONDS)."""
    with _draining():
        left = DRAIN_BYTES
        for line in lines:
            left -= len(line) + 1
            if left < 0:
                break


async def finish_async(lines: AsyncIterator[str]) -> None:
    with _draining():
        left = DRAIN_BYTES
        async for line in lines:
            left -= len(line) + 1
            if left < 0:
                break


class _Body:
    """A response body as it arrives: decoded, every byte counted against the cap before
    anything is kept, on the wire and once decompressed (a small gzip body can inflate to
    gigabytes). Only gzip and deflate are undone; the client asks for neither."""

    def __init__(self, response: httpx.Response, limit: int | None):
        self.limit = limit or settings.LLM_MAX_RESPONSE_BYTES
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            raise LLMError(
                "oversized", f"The answer is {int(declared)} bytes, over the {self.limit} cap."
            )
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding in ("", "identity"):
            self.inflate = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            self.inflate = zlib.decompressobj(47)  # gzip or zlib, told apart by the header
        else:
            raise LLMError(
                "bad_response", f"The answer is compressed as {encoding[:40]}, which is refused."
            )
        self.wire = self.size = 0

    def decode(self, chunk: bytes) -> bytes:
        self.wire += len(chunk)
        if self.wire > self.limit:
            raise LLMError("oversized", f"The answer exceeds the {self.limit} byte cap.")
        if self.inflate is not None:
            try:
                chunk = self.inflate.decompress(chunk, self.limit - self.size + 1)
            except zlib.error as exc:
                raise LLMError("bad_response", "The compressed answer is corrupt.") from exc
        self.size += len(chunk)
        if self.size > self.limit:
            raise LLMError("oversized", f"The answer exceeds the {self.limit} byte cap.")
        return chunk


class _Lines:
    """Split decoded bytes into text lines (LF or CRLF), refusing a line longer than the
    cap at once rather than assembling it first."""

    def __init__(self, limit: int):
        self.limit = limit
        self.pending = b""

    def feed(self, data: bytes) -> list[str]:
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        if len(self.pending) > self.limit:
            raise LLMError(
                "bad_response", f"A line of the answer is over the {self.limit} byte cap."
            )
        # A line ends at a newline, which no multi-byte UTF-8 character holds.
        return [line.removesuffix(b"\r").decode("utf-8", "replace") for line in lines]

    def end(self) -> list[str]:
        rest, self.pending = self.pending, b""
        return [rest.removesuffix(b"\r").decode("utf-8", "replace")] if rest else []


def read_capped(response: httpx.Response, limit: int | None = None) -> bytes:
    """Read the whole body, refusing more than the size cap (on the wire and decoded)."""
    body = _Body(response, limit)
    return b"".join(body.decode(chunk) for chunk in response.iter_raw())


async def read_capped_async(response: httpx.Response, limit: int | None = None) -> bytes:
    body, parts = _Body(response, limit), []
    async for chunk in response.aiter_raw():
        parts.append(body.decode(chunk))
    return b"".join(parts)


def lines(response: httpx.Response) -> Iterator[str]:
    """The body's lines as they arrive, within the size cap."""
    body = _Body(response, None)
    split = _Lines(body.limit)
    for chunk in response.iter_raw():
        yield from split.feed(body.decode(chunk))
    yield from split.end()


async def alines(response: httpx.Response) -> AsyncIterator[str]:
    body = _Body(response, None)
    split = _Lines(body.limit)
    async for chunk in response.aiter_raw():
        for line in split.feed(body.decode(chunk)):
            yield line
    for line in split.end():
        yield line


def send(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    content: bytes | None = None,
    timeout: float,
    options: ClientOptions = ClientOptions(),
) -> RawResponse:
    """Send a request and return the whole capped response."""
    started = time.perf_counter()
    with open_stream(
        method, url, headers=headers, content=content, timeout=timeout, options=options
    ) as response:
        body = read_capped(response)
        return RawResponse(
            status_code=response.status_code,
            headers=response.headers,
            body=body,
            elapsed_ms=round((time.perf_counter() - started) * 1000),
        )
