"""An upstream's answer made safe: read through its wire format, classified, scrubbed.

`interpret` reads a whole reply into a CallResult; `Events` turns a stream's events into
scrubbed events (each block scrubbed by a stream scrubber of its own) while it folds
them into the final result; `settle` scrubs a finished result. Thinking whose text had
to be masked loses its signature: a signature over other text would be a lie, and
sending it back would fail.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from integrations.llm import chat, inputs
from integrations.llm.chat import (
    Accumulator,
    BlockDelta,
    BlockEnded,
    BlockStarted,
    Finished,
    Message,
    Opaque,
    Reasoning,
    Refusal,
    Text,
    ToolCall,
    UsageSeen,
)
from integrations.llm.config import CallResult, Usage
from integrations.llm.errors import (
    STATUS_SENTENCES,
    ErrorKind,
    LLMError,
    classify_status,
    retry_after,
)
from integrations.llm.redact import Scrubber, excerpt

RAW_LIMIT = 64 * 1024
UPSTREAM_MESSAGE_LIMIT = 300
# What a reply's parser may trip over when an upstream sends the wrong types.
SHAPE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError)
# How servers say a request was too long for the model.
CONTEXT_WORDS = re.compile(
    r"context.length|context window|maximum context|too many tokens|prompt is too long|"
    r"input is too long|reduce the length|max_tokens.*(exceed|too large)",
    re.I,
)


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


def context_exceeded(error: LLMError | None) -> bool:
    return error is not None and bool(CONTEXT_WORDS.search(error.upstream_message or ""))


# How servers say a request was refused by a content filter: OpenAI and Azure
# (content_filter, "content management policy"), and the safety wording of others.
CONTENT_WORDS = re.compile(
    r"content.filter|content.policy|content management policy|responsibleai|"
    r"safety (system|policy|filter)|flagged as (unsafe|harmful)",
    re.I,
)


def content_filtered(error: LLMError | None) -> bool:
    return error is not None and bool(CONTENT_WORDS.search(error.upstream_message or ""))


def interpret(raw, adapter, config, prompt, result: CallResult) -> None:
    """Read a whole reply into the result; `settle` scrubs it."""
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
            retry_after=retry_after(raw.headers),
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
        completion = adapter.read(data, config, prompt)
    except SHAPE_ERRORS as exc:
        raise LLMError(
            ErrorKind.BAD_RESPONSE,
            f"The answer has an unexpected shape: {str(exc)[:120] or type(exc).__name__}",
            status=raw.status_code,
        ) from exc
    if isinstance(completion, chat.Vectors):  # an embeddings answer: its vectors, described
        result.vectors = completion
        fill(
            result,
            chat.text_message("assistant", completion.summary()),
            chat.Finish(),
            completion.usage,
        )
        return
    fill(result, completion.message, completion.finish, completion.usage)


def fill(result: CallResult, message: Message, finish, usage: Usage) -> None:
    result.message, result.finish, result.usage = message, finish, usage
    result.content = message.text()
    result.finish_reason = finish.reason if finish is not None else ""


def settle(result: CallResult, sc: Scrubber) -> None:
    """Make a result safe to show and store: every upstream string scrubbed, numbers in range."""
    if result.message is not None:
        result.message = scrub_message(result.message, sc)
        result.content = result.message.text()
    else:
        result.content = sc.text(result.content if isinstance(result.content, str) else "")
    result.finish_reason = sc.text(result.finish_reason or "")[:50]
    if result.finish is not None:
        result.finish = replace(result.finish, raw=sc.text(result.finish.raw)[:50])
    result.raw = sc.text(result.raw)
    result.raw_json = _scrubbed_raw(result.raw_json, sc)
    result.response_id = sc.text(result.response_id)
    result.response_model = sc.text(result.response_model)
    result.usage = _clamped(result.usage)
    if result.error is not None:
        result.error.message = sc.text(result.error.message)
        result.error.upstream_message = sc.text(result.error.upstream_message)[
            :UPSTREAM_MESSAGE_LIMIT
        ]
    result.ok = result.error is None


def _scrubbed_raw(data: Any, sc: Scrubber) -> Any:
    """The reply as the upstream sent it, scrubbed; a signed thinking block (Anthropic's)
    whose text had to change loses its signature, as in scrub_message."""
    scrubbed = sc.json(data)
    if isinstance(data, dict) and isinstance(data.get("content"), list):
        for before, after in zip(data["content"], scrubbed["content"], strict=True):
            if (
                isinstance(before, dict)
                and before.get("signature")
                and before.get("thinking") != after.get("thinking")
            ):
                after["signature"] = ""
    return scrubbed


def scrub_message(message: Message, sc: Scrubber) -> Message:
    parts = []
    for part in message.parts:
        if isinstance(part, Text):
            part = Text(sc.text(part.text))
        elif isinstance(part, Refusal):
            part = Refusal(sc.text(part.text))
        elif isinstance(part, ToolCall):
            part = ToolCall(
                sc.text(part.id)[:64], sc.text(part.name)[:128], sc.text(part.arguments)
            )
        elif isinstance(part, Reasoning):
            text = sc.text(part.text)
            signature = part.signature if text == part.text else ""
            part = Reasoning(text, sc.text(signature), sc.text(part.redacted), part.format)
        elif isinstance(part, Opaque):
            part = Opaque(part.format, sc.json(part.raw))
        parts.append(part)
    return Message(message.role, tuple(parts), message.name)


def _clamped(usage: Usage) -> Usage:
    """Return usage with any count a database column cannot hold (or a lie) dropped."""

    def ok(n):
        return (
            n
            if isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= inputs.MAX_INT
            else None
        )

    return Usage(*(ok(getattr(usage, f)) for f in (
        "prompt_tokens", "completion_tokens", "total_tokens", "cache_read_tokens",
        "cache_write_tokens", "reasoning_tokens",
    )))  # fmt: skip


def events_of(message: Message, finish, usage: Usage) -> list:
    """A whole answer as the events a stream of it would have been."""
    out: list = []
    for index, part in enumerate(message.parts):
        if isinstance(part, ToolCall):
            out += [
                BlockStarted(index, "tool_call", part.id, part.name),
                BlockDelta(index, "tool_call", part.arguments),
            ]
        elif isinstance(part, Reasoning):
            out += [
                BlockStarted(index, "reasoning"),
                BlockDelta(index, "reasoning", part.text, part.signature),
            ]
        elif isinstance(part, Text | Refusal):
            out += [BlockStarted(index, "text"), BlockDelta(index, "text", part.text)]
        else:
            continue
        out.append(BlockEnded(index))
    out.append(UsageSeen(usage))
    if finish is not None:
        out.append(Finished(finish))
    return out


class Events:
    """A stream's events on their way to the caller: each block's text (or a tool call's
    arguments) through a stream scrubber of its own, ids and names scrubbed whole, and a
    signature held to the block's end, then dropped if anything in the block was masked.
    Folds what it lets through into the answer (`accumulator`)."""

    def __init__(self, scrubber: Scrubber):
        self.scrubber = scrubber
        self.live: dict[int, Any] = {}
        self.raw: dict[int, list[str]] = {}
        self.shown: dict[int, list[str]] = {}
        self.signatures: dict[int, list[str]] = {}
        self.kinds: dict[int, str] = {}
        self.accumulator = Accumulator()
        self.finish: chat.Finish | None = None
        self.delivered = False  # a text or tool-call delta has gone to the caller

    def _out(self, event, out: list) -> None:
        self.accumulator.feed(event)
        out.append(event)

    def feed(self, event) -> list:
        out: list = []
        sc = self.scrubber
        if isinstance(event, BlockStarted):
            index = event.index
            self.kinds[index] = event.kind
            self.live[index] = sc.stream()
            self.raw[index], self.shown[index], self.signatures[index] = [], [], []
            self._out(
                BlockStarted(
                    index, event.kind, sc.text(event.call_id)[:64], sc.text(event.name)[:128]
                ),
                out,
            )
        elif isinstance(event, BlockDelta):
            index = event.index
            if index not in self.live:
                out += self.feed(BlockStarted(index, event.kind))
            self.raw[index].append(event.text)
            if event.signature:
                self.signatures[index].append(event.signature)
            shown = self.live[index].feed(event.text) if event.text else ""
            if shown:
                self.shown[index].append(shown)
                self.delivered = True
                self._out(BlockDelta(index, self.kinds[index], shown), out)
        elif isinstance(event, BlockEnded):
            out += self._close(event.index)
        elif isinstance(event, Finished):
            for index in list(self.live):
                out += self._close(index)
            finish = event.finish
            if finish.reason == "stop" and self.accumulator.message().tool_calls:
                finish = chat.Finish("tool_calls", finish.raw)  # tools called, then "stop"
            self.finish = finish
            self._out(Finished(finish), out)
        elif isinstance(event, UsageSeen):
            self._out(event, out)
        return out

    def _close(self, index: int) -> list:
        if index not in self.live:
            return []
        out: list = []
        tail = self.live.pop(index).flush()
        if tail:
            self.shown[index].append(tail)
            self.delivered = True
            self._out(BlockDelta(index, self.kinds[index], tail), out)
        signature = "".join(self.signatures.pop(index))
        if signature and "".join(self.raw[index]) == "".join(self.shown[index]):
            self._out(BlockDelta(index, self.kinds[index], "", self.scrubber.text(signature)), out)
        self._out(BlockEnded(index), out)
        return out

    def end(self) -> list:
        out: list = []
        for index in list(self.live):
            out += self._close(index)
        return out
