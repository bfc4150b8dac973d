"""A real HTTP server on 127.0.0.1 that plays an LLM endpoint, for tests and benchmarks.

Each test sets `server.handler` to a function taking the recorded request and the
raw request handler; helpers below cover the usual answers.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import ipaddress
import json
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    started: float
    finished: float = 0.0
    client: tuple = ()  # the caller's (address, port): one per connection it opened

    def json(self) -> Any:
        return json.loads(self.body)


def openai_reply(content: str = "pong", usage: dict | None = None, finish: str = "stop") -> dict:
    data = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
    }
    if usage is not False:
        data["usage"] = usage or {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    return data


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 makes simultaneous clients wait for SYN retries (1 s).
    request_queue_size = 512


class _TLSServer(_Server):
    context: ssl.SSLContext

    def get_request(self):
        conn, address = self.socket.accept()
        try:  # the handshake; a client that refuses the certificate fails it here
            return self.context.wrap_socket(conn, server_side=True), address
        except (OSError, ssl.SSLError):
            conn.close()
            raise


@functools.cache
def certificate() -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (PEM text) and the path of its key file,
    made once per test process. The certificate is its own CA: a client trusts it only
    when given it as a CA bundle."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test upstream")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="upstream-tls-"))
    key_file = folder / "key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), str(key_file)


@dataclass
class Upstream:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Recorded] = field(default_factory=list)
    handler: Callable | None = None
    record: bool = True  # benchmarks turn this off to keep memory flat
    tls: bool = False  # serve HTTPS with `certificate()`
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> Upstream:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Like real servers: without TCP_NODELAY, headers and body go out as two
            # segments and the client's delayed ACK stalls every answer by ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args):  # keep test output quiet
                pass

            def _handle(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                rec = Recorded(
                    self.command,
                    self.path,
                    dict(self.headers.items()),
                    body,
                    time.monotonic(),
                    client=self.client_address,
                )
                upstream.requests.append(rec)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    (upstream.handler or reply_json(openai_reply()))(rec, self)
                rec.finished = time.monotonic()

            do_GET = do_POST = do_PUT = _handle

        if self.tls:
            cert_pem, key_file = certificate()
            cert_file = Path(key_file).with_name("cert.pem")
            cert_file.write_text(cert_pem)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert_file, key_file)
            self._server = _TLSServer((self.host, 0), Handler)
            self._server.context = context
        else:
            self._server = _Server((self.host, 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


def send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    content_type: str,
    headers: dict | None = None,
):
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.end_headers()
    handler.wfile.write(body)


def reply_json(data: Any, status: int = 200, delay: float = 0.0, headers: dict | None = None):
    def handle(rec, h):
        if delay:
            time.sleep(delay)
        send(h, status, json.dumps(data).encode(), "application/json", headers)

    return handle


def reply_text(text: str, status: int = 200, content_type: str = "text/html"):
    def handle(rec, h):
        send(h, status, text.encode(), content_type)

    return handle


def reply_redirect(location: str, status: int = 302):
    def handle(rec, h):
        send(h, status, b"", "text/plain", {"Location": location})

    return handle


def reply_slow_headers(seconds: float):
    def handle(rec, h):
        time.sleep(seconds)
        send(h, 200, json.dumps(openai_reply()).encode(), "application/json")

    return handle


def reply_trickle(total_bytes: int = 200, interval: float = 0.2):
    """Send headers at once, then the body one byte at a time."""

    def handle(rec, h):
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(total_bytes))
        h.end_headers()
        for _ in range(total_bytes):
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(interval)

    return handle


def reply_oversized(size: int, declare_length: bool = True):
    def handle(rec, h):
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        if declare_length:
            h.send_header("Content-Length", str(size))
        else:
            h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = b"x" * 65536
        sent = 0
        while sent < size:
            piece = chunk[: size - sent]
            if declare_length:
                h.wfile.write(piece)
            else:
                h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sent += len(piece)
        if not declare_length:
            h.wfile.write(b"0\r\n\r\n")

    return handle


def reply_reset():
    def handle(rec, h):
        # Drop the connection without a response, the way a crashed server does.
        h.close_connection = True
        h.connection.shutdown(socket.SHUT_RDWR)

    return handle


def reply_sse(
    words: list[str],
    delay: float = 0.0,
    usage: dict | None = None,
    finish: str = "stop",
    break_after: int | None = None,
    done: bool = True,
):
    """Stream an OpenAI chat completion as server-sent events, chunked."""

    def handle(rec, h):
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def event(data) -> None:
            payload = (
                f"data: {json.dumps(data) if not isinstance(data, str) else data}\n\n".encode()
            )
            h.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
            h.wfile.flush()

        for i, word in enumerate(words):
            if break_after is not None and i == break_after:
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)  # a broken stream, no terminating chunk
                return
            event({"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
            if delay:
                time.sleep(delay)
        event({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if usage:
            event({"choices": [], "usage": usage})
        if done:
            event("[DONE]")
        h.wfile.write(b"0\r\n\r\n")

    return handle


def reply_anthropic_sse(text_parts: list[str], input_tokens: int = 10, output_tokens: int = 4):
    def handle(rec, h):
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def event(name, data) -> None:
            payload = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            h.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")

        event(
            "message_start",
            {
                "type": "message_start",
                "message": {"usage": {"input_tokens": input_tokens, "output_tokens": 1}},
            },
        )
        for part in text_parts:
            event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": part},
                },
            )
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": output_tokens},
            },
        )
        event("message_stop", {"type": "message_stop"})
        h.wfile.write(b"0\r\n\r\n")

    return handle


def reply_load(
    latency: float = 0.0,
    tokens: int = 20,
    token_rate: float | None = None,
    failure_ratio: float = 0.0,
    seed: int = 7,
    tool: bool = False,
):
    """A load-test upstream: answers after `latency` seconds, streams `tokens` words at
    `token_rate` per second when asked to stream, and fails a `failure_ratio` share of
    requests with a 503. With `tool`, the words are one tool call's arguments instead
    (in OpenAI's delta shape when streamed). Deterministic for a given seed."""
    import random

    rng = random.Random(seed)
    lock = threading.Lock()

    def handle(rec, h):
        with lock:
            fail = rng.random() < failure_ratio
        if latency:
            time.sleep(latency)
        if fail:
            send(h, 503, b'{"error": {"message": "overloaded (load test)"}}', "application/json")
            return
        try:
            streaming = bool(json.loads(rec.body or b"{}").get("stream"))
        except ValueError:
            streaming = False
        words = [f"tok{i} " for i in range(tokens)]
        usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}
        if tool:
            return _tool_call(h, words, streaming, usage, token_rate)
        if streaming:
            reply_sse(words, delay=1 / token_rate if token_rate else 0.0, usage=usage)(rec, h)
        else:
            send(
                h,
                200,
                json.dumps(openai_reply("".join(words), usage=usage)).encode(),
                "application/json",
            )

    return handle


def _tool_call(h, pieces: list[str], streaming: bool, usage: dict, token_rate) -> None:
    """One tool call whose arguments are the pieces (JSON text: {"q": "<pieces>"})."""
    arguments = ['{"q": "'] + pieces + ['"}']
    call = {"id": "call_load", "type": "function", "function": {"name": "lookup", "arguments": ""}}
    if not streaming:
        call["function"]["arguments"] = "".join(arguments)
        reply = openai_reply("", usage=usage, finish="tool_calls")
        reply["choices"][0]["message"] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [call],
        }
        return send(h, 200, json.dumps(reply).encode(), "application/json")
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()

    def event(data) -> None:
        payload = f"data: {json.dumps(data) if not isinstance(data, str) else data}\n\n".encode()
        h.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        h.wfile.flush()

    event({"choices": [{"index": 0, "delta": {"tool_calls": [dict(call, index=0)]}}]})
    for piece in arguments:
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        event({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        if token_rate:
            time.sleep(1 / token_rate)
    event({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    event({"choices": [], "usage": usage})
    event("[DONE]")
    h.wfile.write(b"0\r\n\r\n")
