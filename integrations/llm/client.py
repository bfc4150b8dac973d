"""The one function that calls a model: `call(config, prompt) -> CallResult`.

The Test button, the Sandbox, the REST API and the health-check command all come
here with the same `LLMConfig`, so a passing test means the Sandbox will work.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote, quote_plus

from django.conf import settings

from integrations.llm import auth, inputs, transport
from integrations.llm.auth import check_route, forget_oauth_token
from integrations.llm.config import AuthConfig, CallResult, LLMConfig, Prompt, Usage
from integrations.llm.errors import STATUS_SENTENCES, ErrorKind, LLMError, classify_status
from integrations.llm.protocols import adapter_for
from integrations.llm.redact import Scrubber, excerpt, redact_request, scrubber

RAW_LIMIT = 64 * 1024
UPSTREAM_MESSAGE_LIMIT = 300
FINISH_REASON_LIMIT = 50
# What a reply's parser may trip over when an upstream sends the wrong types.
SHAPE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError)


def _options(config: LLMConfig) -> transport.ClientOptions:
    return transport.ClientOptions(
        verify_tls=config.verify_tls, ca_bundle=config.ca_bundle, proxy_url=config.proxy_url
    )


def build_request(config: LLMConfig, prompt: Prompt) -> tuple[str, dict[str, str], Any, list[str]]:
    """Return (url, headers, body, extra secrets) exactly as they will be sent."""
    adapter = adapter_for(config.protocol)
    url = adapter.url(config)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    headers.update(adapter.headers(config))
    for header in config.headers:
        headers[header.name] = header.value
    body = copy.deepcopy(adapter.body(config, prompt))
    check_route(config.auth, config.headers, url, config.proxy_url)
    url, extra = auth.apply(config.auth, url, headers, body, _options(config), config.timeout)
    _check_sendable(headers)
    return url, headers, body, extra


def _check_sendable(headers: dict[str, str]) -> None:
    """Refuse a stored header value HTTP cannot carry (saved before the edge rules held)."""
    for name, value in headers.items():
        try:
            inputs.check_header_value(value)
        except inputs.InputError as exc:
            raise LLMError(
                ErrorKind.CONFIG,
                f"The {name} header holds characters HTTP cannot carry (line breaks or "
                "non-ASCII, e.g. an accented key). Re-enter it.",
            ) from exc


def preview_request(config: LLMConfig, prompt: Prompt) -> dict:
    """Return the redacted request without sending it (OAuth tokens are not fetched)."""
    if config.auth.kind == "oauth2":
        placeholder = AuthConfig(kind="bearer", token="$ACCESS_TOKEN", bound=config.auth.bound)
        config = replace(config, auth=placeholder)
    url, headers, body, extra = build_request(config, prompt)
    return redact_request(
        "POST", url, headers, body, config.secrets() + extra, _secret_names(config)
    )


def _secret_names(config: LLMConfig) -> set[str]:
    names = {h.name.lower() for h in config.headers if h.secret}
    if config.auth.kind == "header":
        names.add(config.auth.header_name.lower())
    return names


def upstream_message(data: Any, text: str) -> str:
    """Return the upstream's own error message from an error body."""
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("code") or error.get("type")
            if message:
                return str(message)
        if isinstance(error, str):
            return error
        for key in ("message", "detail", "error_description", "msg"):
            if data.get(key):
                return str(data[key]) if not isinstance(data[key], list) else json.dumps(data[key])
    stripped = text.strip()
    if stripped.startswith("<"):
        return ""  # an HTML error page says nothing useful in one line
    return stripped


def _settle(result: CallResult, sc: Scrubber) -> None:
    """Make a result safe to show and store: every upstream string scrubbed, numbers in range."""
    result.content = sc.text(result.content if isinstance(result.content, str) else "")
    reason = result.finish_reason if isinstance(result.finish_reason, str) else ""
    result.finish_reason = sc.text(reason)[:FINISH_REASON_LIMIT]
    result.raw = sc.text(result.raw)
    result.raw_json = sc.json(result.raw_json)
    result.usage = _clamped(result.usage)
    if result.error is not None:
        result.error.message = sc.text(result.error.message)
        result.error.upstream_message = sc.text(result.error.upstream_message)[
            :UPSTREAM_MESSAGE_LIMIT
        ]
    result.ok = result.error is None


def _clamped(usage: Usage) -> Usage:
    """Return usage with any count a database column cannot hold (or a lie) dropped."""
    counts = [
        n if isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= inputs.MAX_INT else None
        for n in (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
    ]
    return Usage(*counts)


def _interpret(raw: transport.RawResponse, config: LLMConfig, result: CallResult) -> None:
    """Read a whole reply into the result; the caller scrubs it."""
    result.status_code = raw.status_code
    text = raw.body.decode("utf-8", "replace")
    result.raw = excerpt(text, [], RAW_LIMIT)
    try:
        data = json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        data = None
    result.raw_json = data
    if raw.status_code >= 400:
        message = upstream_message(data, text)[: UPSTREAM_MESSAGE_LIMIT * 4]
        kind = classify_status(raw.status_code, text, message)
        result.error = LLMError(
            kind,
            f"{raw.status_code} from the endpoint: {STATUS_SENTENCES[kind]}.",
            status=raw.status_code,
            upstream_message=message,
        )
        return
    if data is None:
        content_type = raw.headers.get("content-type", "no content type")
        raise LLMError(
            ErrorKind.NON_JSON,
            f"The endpoint answered {raw.status_code} with {content_type[:80]}, not JSON.",
            status=raw.status_code,
        )
    try:
        content, finish_reason, usage = adapter_for(config.protocol).parse(data, config)
    except SHAPE_ERRORS as exc:
        raise LLMError(
            ErrorKind.BAD_RESPONSE,
            f"The answer has an unexpected shape ({type(exc).__name__}).",
            status=raw.status_code,
        ) from exc
    if not isinstance(content, str):
        raise LLMError(ErrorKind.BAD_RESPONSE, "The answer's content is not text.")
    result.content = content
    result.finish_reason = finish_reason if isinstance(finish_reason, str) else ""
    result.usage = usage


class _Call:
    """One call's rules, whatever does its I/O: what is sent, how the reply is read,
    scrubbed and classified. `call`/`stream` drive it with blocking sockets on a thread;
    `acall`/`astream` drive it on an event loop (the gateway under ASGI)."""

    def __init__(self, config: LLMConfig, prompt: Prompt, progress: dict | None, streamed: bool):
        self.config = config
        self.prompt = prompt
        self.adapter = adapter_for(config.protocol)
        self.started = time.perf_counter()
        self.result = CallResult(ok=False, streamed=streamed)
        self.secrets = config.secrets()
        self.state: dict = {} if progress is None else progress
        self.parts: list[str] = []
        self.fall_back = False  # the endpoint would not stream: make a normal call instead
        self.done = False
        self.received = 0
        self.live = None
        self.body: Any = None

    @property
    def streams(self) -> bool:
        return self.adapter.streams and self.config.protocol != "custom"

    @property
    def needs_thread(self) -> bool:
        """Building the request may fetch an OAuth token: blocking I/O."""
        return self.config.auth.kind == "oauth2"

    def build(self) -> tuple[str, dict[str, str], Any, list[str]]:
        return build_request(self.config, self.prompt)

    def request(self, built) -> dict:
        """The keyword arguments of transport.open_stream for this request."""
        url, headers, body, extra = built
        if self.result.streamed:
            body = self.adapter.stream_body(body)
            headers["Accept"] = "text/event-stream"
        self.body = body
        self.secrets = self.config.secrets() + extra
        self.result.request = redact_request(
            "POST", url, headers, body, self.secrets, _secret_names(self.config)
        )
        self.state["request"] = self.result.request
        return {
            "method": "POST",
            "url": url,
            "headers": headers,
            "content": json.dumps(body).encode(),
            "timeout": self.config.timeout,
            "options": _options(self.config),
        }

    def retry(self, status_code: int, attempt: int) -> bool:
        """A cached OAuth token may have been revoked early: fetch a new one once."""
        if status_code == 401 and self.config.auth.kind == "oauth2" and attempt == 0:
            forget_oauth_token(self.config.auth)
            return True
        return False

    def answered(self, raw: transport.RawResponse) -> None:
        _interpret(raw, self.config, self.result)

    def opened(self, response) -> bool:
        """True when the reply is an event stream; otherwise read it whole (`whole`)."""
        self.result.status_code = response.status_code
        events = "event-stream" in response.headers.get("content-type", "")
        if response.status_code < 400 and events:
            self.live = scrubber(tuple(self.secrets)).stream()
            return True
        return False

    def whole(self, response, body: bytes) -> None:
        """A streamed request answered in one piece: an error, plain JSON, or a refusal of
        the stream options (then a normal call follows)."""
        raw = transport.RawResponse(response.status_code, response.headers, body, 0)
        if response.status_code in (400, 422) and "stream" in self.body:
            self.fall_back = True
        else:
            self.result.streamed = False
            _interpret(raw, self.config, self.result)

    def line(self, line: str) -> str:
        """Read one SSE line; return the scrubbed text to show now (often empty)."""
        limit = settings.LLM_MAX_RESPONSE_BYTES
        self.received += len(line) + 1
        if self.received > limit:
            raise LLMError(ErrorKind.OVERSIZED, f"The stream exceeds the {limit} byte cap.")
        if not line.startswith("data:"):
            return ""
        payload = line[5:].strip()
        if payload == "[DONE]":
            self.done = True
            return ""
        state = self.state
        try:
            data = json.loads(payload)
            state["events"] = state.get("events", 0) + 1
            delta = self.adapter.parse_event(data, state)
        except SHAPE_ERRORS as exc:
            raise LLMError(
                ErrorKind.BAD_RESPONSE, f"A stream event is malformed ({type(exc).__name__})."
            ) from exc
        if state.get("error"):
            raise LLMError(
                ErrorKind.SERVER_ERROR,
                "The endpoint reported an error mid-stream.",
                upstream_message=str(state["error"])[: UPSTREAM_MESSAGE_LIMIT * 4],
            )
        if not delta or not isinstance(delta, str):
            return ""
        if self.result.ttft_ms is None:
            self.result.ttft_ms = state["ttft_ms"] = self._elapsed_ms()
        self.parts.append(delta)
        return self.live.feed(delta)

    def ended(self) -> str:
        """The event stream is over: return the held-back tail, or raise if it broke."""
        if not self.done and not self.state.get("finish_reason"):
            raise LLMError(ErrorKind.CONNECTION, "The stream ended before the answer was complete.")
        self.result.finish_reason = self.state.get("finish_reason", "")
        self.result.usage = self.state.get("usage") or self.result.usage
        self.result.raw = f"(streamed: {self.state.get('events', 0)} events)"
        return self.live.flush()

    def failed(self, exc: LLMError) -> None:
        self.result.error = exc

    def finish(self) -> CallResult:
        result = self.result
        if self.parts:
            result.content = "".join(self.parts)
        _settle(result, scrubber(tuple(self.secrets)))
        result.latency_ms = self._elapsed_ms()
        return result

    def _elapsed_ms(self) -> int:
        return round((time.perf_counter() - self.started) * 1000)


def call(config: LLMConfig, prompt: Prompt) -> CallResult:
    """Send one prompt to one model and return what happened; never raises for upstream trouble."""
    run = _Call(config, prompt, None, streamed=False)
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


async def acall(config: LLMConfig, prompt: Prompt) -> CallResult:
    """`call` on the running event loop."""
    run = _Call(config, prompt, None, streamed=False)
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


def stream(
    config: LLMConfig, prompt: Prompt, progress: dict | None = None
) -> Iterator[str | CallResult]:
    """Yield text deltas as they arrive, then the final CallResult, always last.

    Endpoints that cannot stream (a custom template, a server that answers plain JSON,
    or one that rejects stream options) fall back to a normal call. Closing the
    generator early closes the upstream connection. A stream that breaks keeps its
    partial text in the failed result. Every delta is scrubbed before it is yielded.

    `progress`, if given, holds what is known so far (request, status, time to first
    token, usage) for a caller that stops the stream before its final result.
    """
    return _pinned(_stream(config, prompt, progress))


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


def _stream(config: LLMConfig, prompt: Prompt, progress: dict | None) -> Iterator:
    run = _Call(config, prompt, progress, streamed=True)
    if not run.streams:
        yield call(config, prompt)
        return
    try:
        with transport.open_stream(**run.request(run.build())) as response:
            if run.opened(response):
                lines = response.iter_lines()
                for line in lines:
                    if shown := run.line(line):
                        yield shown
                    if run.done:
                        transport.finish(lines)
                        break
                if tail := run.ended():
                    yield tail
            else:
                run.whole(response, transport.read_capped(response))
    except LLMError as exc:
        run.failed(exc)
    yield call(config, prompt) if run.fall_back else run.finish()


async def astream(
    config: LLMConfig, prompt: Prompt, progress: dict | None = None
) -> AsyncIterator[str | CallResult]:
    """`stream` on the running event loop: no thread is held while the upstream talks."""
    run = _Call(config, prompt, progress, streamed=True)
    if not run.streams:
        yield await acall(config, prompt)
        return
    try:
        async with transport.open_stream_async(**run.request(await _built(run))) as response:
            if run.opened(response):
                lines = response.aiter_lines()
                async for line in lines:
                    if shown := run.line(line):
                        yield shown
                    if run.done:
                        await transport.finish_async(lines)
                        break
                if tail := run.ended():
                    yield tail
            else:
                run.whole(response, await transport.read_capped_async(response))
    except LLMError as exc:
        run.failed(exc)
    yield await acall(config, prompt) if run.fall_back else run.finish()


def list_models(config: LLMConfig) -> list[str]:
    """Return the model IDs the endpoint's /models list offers, scrubbed."""
    adapter = adapter_for(config.protocol)
    url = adapter.models_url(config)
    if not url:
        raise LLMError(ErrorKind.CONFIG, "This protocol has no model list to fetch.")
    if config.auth.kind == "body":
        raise LLMError(ErrorKind.CONFIG, "The model list cannot carry a token in a JSON body.")
    headers = {"Accept": "application/json"}
    headers.update(adapter.headers(config))
    for header in config.headers:
        headers[header.name] = header.value
    check_route(config.auth, config.headers, url, config.proxy_url)
    secrets = config.secrets()
    try:
        url, extra = auth.apply(config.auth, url, headers, None, _options(config), config.timeout)
        secrets = secrets + extra
        _check_sendable(headers)
        raw = transport.send(
            "GET", url, headers=headers, timeout=config.timeout, options=_options(config)
        )
        return _model_ids(raw, scrubber(tuple(secrets)))
    except LLMError as exc:
        sc = scrubber(tuple(secrets))
        exc.message = sc.text(exc.message)
        exc.upstream_message = sc.text(exc.upstream_message)[:UPSTREAM_MESSAGE_LIMIT]
        raise


def _model_ids(raw: transport.RawResponse, sc: Scrubber) -> list[str]:
    text = raw.body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if raw.status_code >= 400:
        kind = classify_status(raw.status_code, text, "")
        message = upstream_message(data, text)
        raise LLMError(kind, f"{raw.status_code} from the model list.", raw.status_code, message)
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise LLMError(ErrorKind.BAD_RESPONSE, "The model list is not a list.")
    ids = set()
    for item in items:
        model_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(model_id, str) and model_id.strip():
            shown = sc.text(model_id)[:200]
            if shown == model_id:  # an id that echoes a secret is no model id
                ids.add(model_id)
    return sorted(ids)


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def curl_command(config: LLMConfig, prompt: Prompt) -> str:
    """Return a curl command reproducing the request, secrets replaced by shell variables."""
    if config.auth.kind == "oauth2":
        placeholder = AuthConfig(kind="bearer", token="\0ACCESS_TOKEN\0", bound=config.auth.bound)
        config = replace(config, auth=placeholder)
    url, headers, body, extra = build_request(config, prompt)
    names: list[tuple[str, str]] = []
    secrets = [(secret, "API_KEY") for secret in config.auth.secrets() + extra]
    for header in config.headers:
        if header.secret and header.value:
            secrets.append((header.value, re.sub(r"[^A-Z0-9]", "_", header.name.upper())))
    for secret, var in secrets:
        # A key in the query string is URL-encoded there: "a+b/c=" becomes "a%2Bb%2Fc%3D".
        names += [(form, var) for form in {secret, quote_plus(secret), quote(secret, safe="")}]
    names.append(("\0ACCESS_TOKEN\0", "ACCESS_TOKEN"))
    names.sort(key=lambda pair: len(pair[0]), reverse=True)

    def swap(text: str) -> tuple[str, bool]:
        changed = False
        for secret, var in names:
            if secret and secret in text:
                text = text.replace(secret, "${" + var + "}")
                changed = True
        return text, changed

    def quoted(text: str) -> str:
        text, changed = swap(text)
        # Double quotes only where a variable must expand.
        if changed:
            return '"' + re.sub(r'(["\\`$])', r"\\\1", text).replace("\\${", "${") + '"'
        return _shell_quote(text)

    lines = [f"curl -X POST {quoted(url)}"]
    lines += [f"  -H {quoted(f'{k}: {v}')}" for k, v in headers.items()]
    lines.append(f"  --data-raw {quoted(json.dumps(body, ensure_ascii=False))}")
    return " \\\n".join(lines)
