"""The one place that calls a model: `call(config, prompt) -> CallResult`, and `stream`.

The Test button, the Sandbox, the REST chat, the gateway and the health check all come
here with the same `LLMConfig` and the neutral prompt (integrations.llm.chat), so a
passing test means the Sandbox and the gateway will work. A call in the upstream's own
format may instead `forward` the caller's body as it is (the gateway does, for OpenAI-
shaped servers): parameters the console does not model reach the server, and the answer
is tapped for metering and scrubbing on its way back.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from integrations.llm import answers, tracing, transport
from integrations.llm.answers import SHAPE_ERRORS, UPSTREAM_MESSAGE_LIMIT, Events
from integrations.llm.auth import forget_oauth_token
from integrations.llm.chat import BlockDelta, Prompt, UsageSeen
from integrations.llm.config import CallResult, Forward, LLMConfig
from integrations.llm.errors import ErrorKind, LLMError, remaining
from integrations.llm.preview import build_request, client_options, secret_names
from integrations.llm.protocols import adapter_for
from integrations.llm.redact import redact_request, scrubber
from integrations.llm.wires.common import UpstreamError, count


class _Call:
    """One call's rules, whatever does its I/O: what is sent, how the reply is read,
    scrubbed and classified. `call`/`stream` drive it with blocking sockets on a thread;
    `acall`/`astream` drive it on an event loop (the gateway under ASGI). With `forward`,
    the caller's body goes as it is and a stream comes back as the upstream's own chunks,
    tapped."""

    def __init__(self, config, prompt, progress, streamed: bool, forward=None, model: str = ""):
        self.config, self.prompt, self.forward = config, prompt, forward
        self.adapter = adapter_for(config.protocol)
        self.started = time.perf_counter()
        self.result = CallResult(ok=False, streamed=streamed)
        self.secrets = config.secrets()
        self.state: dict = {} if progress is None else progress
        self.fall_back = False  # the endpoint would not stream: make a normal call instead
        self.done = False
        self.model = model  # the name the caller used, for forwarded chunks
        self.events: Events | None = None
        self.tap: Any = None  # the wire's tap over a forwarded stream
        self.reader: Any = None
        self.body: Any = None
        self.span: Any = None  # the call's OpenTelemetry span, when tracing is on

    @property
    def streams(self) -> bool:
        return (
            self.adapter.streams and self.config.protocol != "custom" and self.config.kind == "chat"
        )

    @property
    def needs_thread(self) -> bool:
        """Building the request may fetch an OAuth token: blocking I/O."""
        return self.config.auth.kind == "oauth2"

    def build(self):
        return build_request(self.config, self.prompt, self.forward)

    def request(self, built) -> dict:
        """The keyword arguments of transport.open_stream for this request."""
        url, headers, body, extra = built
        if self.result.streamed:
            body = self.adapter.stream_body(body)
            headers["Accept"] = "text/event-stream"
        self.body = body
        self.secrets = self.config.secrets() + extra
        self.result.request = redact_request(
            "POST", url, headers, body, self.secrets, secret_names(self.config)
        )
        self.state["request"] = self.result.request
        if self.span is None:
            self.span = tracing.client_span(
                self.config, self.prompt, self.forward, self.result.streamed
            )
        return {
            "method": "POST",
            "url": url,
            "headers": headers,
            "content": json.dumps(body).encode(),
            "timeout": self.config.timeout,
            "options": client_options(self.config),
        }

    def retry(self, status_code: int, attempt: int) -> bool:
        """A cached OAuth token may have been revoked early: fetch a new one once."""
        if status_code == 401 and self.config.auth.kind == "oauth2" and attempt == 0:
            forget_oauth_token(self.config.auth)
            return True
        return False

    def answered(self, raw: transport.RawResponse) -> None:
        self.result.remaining = remaining(raw.headers)
        answers.interpret(raw, self.adapter, self.config, self.prompt, self.result)
        if isinstance(self.result.raw_json, dict):
            self._identify(self.result.raw_json)

    def _identify(self, data: dict) -> None:
        """The answer's id and model as the upstream names them (OpenAI's body and chunks,
        Anthropic's body and message_start), kept only when they are text."""
        data = data.get("message") if isinstance(data.get("message"), dict) else data
        found, model = data.get("id"), data.get("model")
        if isinstance(found, str) and not self.result.response_id:
            self.result.response_id = found[: tracing.VALUE_LIMIT]
        if isinstance(model, str) and not self.result.response_model:
            self.result.response_model = model[: tracing.VALUE_LIMIT]

    def opened(self, response) -> bool:
        """True when the reply is an event stream; otherwise read it whole (`whole`)."""
        self.result.status_code = response.status_code
        self.result.remaining = remaining(response.headers)
        events = "event-stream" in response.headers.get("content-type", "")
        if response.status_code < 400 and events:
            sc = scrubber(tuple(self.secrets))
            if self.forward is not None:
                self.tap = self.adapter.tap(sc, self.model)
            else:
                self.reader = self.adapter.stream_reader(self.prompt)
                self.events = Events(sc)
            return True
        return False

    def whole(self, response, body: bytes) -> None:
        """A streamed request answered in one piece: an error, plain JSON, or a refusal of
        the stream options (then a normal call follows)."""
        raw = transport.RawResponse(response.status_code, response.headers, body, 0)
        if response.status_code in (400, 422) and "stream" in self.body and self.forward is None:
            self.fall_back = True
        else:
            self.result.streamed = False
            self.answered(raw)

    def line(self, line: str) -> list:
        """Read one SSE line; return what to pass on now: scrubbed events, or (forwarding)
        scrubbed chunks. The transport counted its bytes against the cap already."""
        if not line.startswith("data:"):
            return []
        payload = line[5:].strip()
        if payload == "[DONE]":
            self.done = True
            return []
        try:
            data = json.loads(payload)
            self.state["events"] = self.state.get("events", 0) + 1
            if not self.result.response_id and isinstance(data, dict):
                self._identify(data)
            if self.tap is not None:
                chunks = _listed(self.tap.feed(data))
                self._progress(self.tap.accumulator)
                return chunks
            out = []
            for event in self.reader.feed(data):
                out += self.events.feed(event)
        except UpstreamError as exc:
            raise LLMError(
                ErrorKind.SERVER_ERROR,
                "The endpoint reported an error mid-stream.",
                upstream_message=str(exc)[: UPSTREAM_MESSAGE_LIMIT * 4],
            ) from exc
        except SHAPE_ERRORS as exc:
            raise LLMError(
                ErrorKind.BAD_RESPONSE, f"A stream event is malformed ({type(exc).__name__})."
            ) from exc
        for event in out:
            if isinstance(event, UsageSeen):
                self.state["usage"] = event.usage
            elif isinstance(event, BlockDelta) and self.result.ttft_ms is None:
                self.result.ttft_ms = self.state["ttft_ms"] = self._elapsed_ms()
                transport.first_token_seen()
        return out

    def _progress(self, accumulator) -> None:
        self.state["usage"] = accumulator.usage
        if self.result.ttft_ms is None and accumulator.blocks:
            self.result.ttft_ms = self.state["ttft_ms"] = self._elapsed_ms()
            transport.first_token_seen()

    def ended(self) -> list:
        """The event stream is over: return what is still held back, and raise if the
        upstream stopped before it said it was finished (the caller is told: a cut)."""
        if self.tap is not None:
            out = _listed(self.tap.end())
            completion = self.tap.accumulator.completion()
            answers.fill(self.result, completion.message, completion.finish, completion.usage)
        else:
            out = []
            for event in self.reader.end():
                out += self.events.feed(event)
            out += self.events.end()
            accumulator = self.events.accumulator
            answers.fill(self.result, accumulator.message(), self.events.finish, accumulator.usage)
        self.result.raw = f"(streamed: {self.state.get('events', 0)} events)"
        if self.result.finish is None and not self.done:
            self.state["cut"] = out  # still passed on before the error
            raise LLMError(
                ErrorKind.CONNECTION,
                "The stream ended before the upstream said the answer was finished: it may be cut short.",
            )
        return out

    def failed(self, exc: LLMError) -> None:
        self.result.error = exc

    def partial(self) -> None:
        """A stream that broke: keep what came (for metering and the Sandbox)."""
        if self.events is not None and self.result.message is None:
            accumulator = self.events.accumulator
            answers.fill(self.result, accumulator.message(), None, accumulator.usage)
        elif self.tap is not None and self.result.message is None:
            completion = self.tap.accumulator.completion()
            answers.fill(self.result, completion.message, None, completion.usage)

    def finish(self) -> CallResult:
        result = self.result
        if result.error is not None:
            self.partial()
        scrub = scrubber(tuple(self.secrets))
        answers.settle(result, scrub)
        result.latency_ms = self._elapsed_ms()
        if self.span is not None:
            tracing.end_client_span(self.span, result, self.prompt, scrub.text)
            self.span = None
        return result

    def close(self, why: str = "cancelled") -> None:
        """The caller stopped reading a stream before its end (or the endpoint would not
        stream, and a normal call follows with a span of its own)."""
        if self.span is not None:
            tracing.abandon_client_span(self.span, why)
            self.span = None

    def _elapsed_ms(self) -> int:
        return round((time.perf_counter() - self.started) * 1000)


def count_tokens(config: LLMConfig, forward: Forward) -> int | None:
    """An upstream's own count of a forwarded body's input tokens (Anthropic's
    /messages/count_tokens), or None when it gives none: the caller estimates then."""
    try:
        url, headers, body, _ = build_request(config, Prompt(), forward)
        raw = transport.send(
            "POST",
            url,
            headers=headers,
            content=json.dumps(body).encode(),
            timeout=config.timeout,
            options=client_options(config),
        )
        data = json.loads(raw.body) if raw.status_code == 200 else None
    except (LLMError, ValueError, RecursionError):
        return None
    return count(data.get("input_tokens")) if isinstance(data, dict) else None


def _listed(chunks) -> list:
    """A tap's output as a list (OpenAI's tap gives one chunk or None per chunk)."""
    if isinstance(chunks, list):
        return chunks
    return [] if chunks is None else [chunks]


def call(config: LLMConfig, prompt: Prompt, forward: Any = None) -> CallResult:
    """Send one prompt to one model and return what happened; never raises for upstream
    trouble. `forward`: a caller's body in the upstream's own format, sent as it is."""
    run = _Call(config, prompt, None, False, forward)
    try:
        for attempt in range(2):
            request = run.request(run.build())
            raw = transport.send(**request)
            if not run.retry(raw.status_code, attempt):
                break
        run.answered(raw)
    except LLMError as exc:
        run.failed(exc)
    return run.finish()


async def acall(config: LLMConfig, prompt: Prompt, forward: Any = None) -> CallResult:
    """`call` on the running event loop."""
    run = _Call(config, prompt, None, False, forward)
    try:
        for attempt in range(2):
            request = run.request(await _built(run))
            async with transport.open_stream_async(**request) as response:
                body = await transport.read_capped_async(response)
            raw = transport.RawResponse(response.status_code, response.headers, body, 0)
            if not run.retry(raw.status_code, attempt):
                break
        run.answered(raw)
    except LLMError as exc:
        run.failed(exc)
    return run.finish()


async def _built(run: _Call):
    if run.needs_thread:
        return await asyncio.to_thread(run.build)
    return run.build()


def _whole(result: CallResult) -> list:
    """A result that came in one piece, as the events a stream of it would have sent."""
    if result.message is None or not result.ok:
        return []
    return answers.events_of(result.message, result.finish, result.usage)


def stream(
    config: LLMConfig,
    prompt: Prompt,
    progress: dict | None = None,
    forward: Any = None,
    model: str = "",
    first_token: float | None = None,
) -> Iterator:
    """Yield the answer as it arrives (chat events: blocks of text, tool calls and
    thinking, usage, the finish; or, forwarding, the upstream's own chunks), then the
    final CallResult, always last.

    Endpoints that cannot stream (a custom template, a server that answers plain JSON,
    or one that rejects stream options) fall back to a normal call, whose answer is
    yielded as events too. Closing the generator early closes the upstream connection.
    A stream that breaks keeps its partial answer in the failed result. Everything is
    scrubbed before it is yielded. `progress`, if given, holds what is known so far
    (request, time to first token, usage) for a caller that stops early. `first_token`:
    seconds within which the first token must come (a route's), else a timeout.
    """
    return _pinned(_stream(config, prompt, progress, forward, model, first_token))


def _pinned(generator: Iterator) -> Iterator:
    """Run every step of a generator in one context, whoever iterates it.

    The call's deadline lives in a context variable. A server may take each step in a
    different context (asgiref copies one per step; a WSGI server iterates outside the
    view's), which would lose the deadline midway or fail to reset it.
    """
    context = contextvars.copy_context()
    try:
        while True:
            try:
                item = context.run(next, generator)
            except StopIteration:
                return
            yield item
    finally:
        context.run(generator.close)


def _stream(config, prompt, progress, forward, model, first_token=None) -> Iterator:
    run = _Call(config, prompt, progress, True, forward, model)
    try:
        transport.expect_first_token(first_token if run.streams else None)
        if not run.streams:
            result = call(config, prompt, forward)
            yield from _whole(result)
            yield result
            return
        try:
            with transport.open_stream(**run.request(run.build())) as response:
                if run.opened(response):
                    lines = transport.lines(response)
                    for line in lines:
                        yield from run.line(line)
                        if run.done:
                            transport.finish(lines)
                            break
                    yield from run.ended()
                else:
                    run.whole(response, transport.read_capped(response))
        except LLMError as exc:
            yield from run.state.pop("cut", [])
            run.failed(exc)
        if run.fall_back:
            run.close("stream_refused")
            result = call(config, prompt)
            yield from _whole(result)
            yield result
            return
        result = run.finish()
        if not result.streamed:
            yield from _whole(result)
        yield result
    finally:
        run.close()  # a stream left unread ends its span (a no-op after finish)


async def astream(
    config: LLMConfig,
    prompt: Prompt,
    progress: dict | None = None,
    forward: Any = None,
    model: str = "",
    first_token: float | None = None,
) -> AsyncIterator:
    """`stream` on the running event loop: no thread is held while the upstream talks."""
    run = _Call(config, prompt, progress, True, forward, model)
    try:
        transport.expect_first_token(first_token if run.streams else None)
        if not run.streams:
            result = await acall(config, prompt, forward)
            for item in [*_whole(result), result]:
                yield item
            return
        try:
            async with transport.open_stream_async(**run.request(await _built(run))) as response:
                if run.opened(response):
                    lines = transport.alines(response)
                    async for line in lines:
                        for item in run.line(line):
                            yield item
                        if run.done:
                            await transport.finish_async(lines)
                            break
                    for item in run.ended():
                        yield item
                else:
                    run.whole(response, await transport.read_capped_async(response))
        except LLMError as exc:
            for item in run.state.pop("cut", []):
                yield item
            run.failed(exc)
        if run.fall_back:
            run.close("stream_refused")
            result = await acall(config, prompt)
        else:
            result = run.finish()
        for item in [*(_whole(result) if not result.streamed else []), result]:
            yield item
    finally:
        run.close()  # a stream left unread ends its span (a no-op after finish)
