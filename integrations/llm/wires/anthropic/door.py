"""Anthropic Messages, door side: what the gateway's /v1/messages reads and answers.

`read_request` reads a caller's body strictly into the neutral prompt, naming the field it
refuses; `write_reply` and `StreamWriter` answer in Anthropic's shape, whole or as its
event stream, whatever protocol the model behind the door speaks. `Tap` is the other
case: an Anthropic upstream's own events, forwarded to the caller block by block, each
block's text scrubbed on the way and a signed block's signature dropped if its text
had to change.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from integrations.llm import chat
from integrations.llm.chat import (
    BlockDelta,
    BlockEnded,
    BlockStarted,
    Completion,
    Media,
    Message,
    Opaque,
    Prompt,
    Reasoning,
    Refusal,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from integrations.llm.wires.anthropic import FINISH_OUT, FORMAT, StreamReader
from integrations.llm.wires.common import (
    WireError,
    as_dict,
    integer_field,
    number_field,
    requested_model,
)

MAX_MESSAGES = 2000
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
KNOWN = {
    "model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature",
    "top_p", "top_k", "tools", "tool_choice", "metadata", "thinking",
}  # fmt: skip
# Anthropic's statuses for its error types (overloaded is its own 529).
STATUS = {"overloaded_error": 529}
# What Anthropic's error types are, for the door's shared vocabulary.
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    503: "overloaded_error", 529: "overloaded_error",
}  # fmt: skip


@dataclass
class MessagesRequest:
    model: str
    prompt: Prompt
    stream: bool
    body: dict  # as sent: forwarded to an Anthropic upstream
    unknown: list[str] = field(default_factory=list)  # fields only an Anthropic upstream takes
    why: dict = field(default_factory=dict)  # what to say when one of them cannot go
    include_usage: bool = True


# --- reading a caller's body ---------------------------------------------------------------


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise WireError("This must be text.", where)
    return value


def _media(block: dict, where: str) -> Media | Text:
    source = as_dict(block.get("source"))
    kind = "file" if block.get("type") == "document" else "image"
    if source.get("type") == "base64":
        return Media(
            kind,
            data=_text(source.get("data"), f"{where}.source.data"),
            media_type=_text(source.get("media_type"), f"{where}.source.media_type"),
        )
    if source.get("type") == "url":
        return Media(kind, url=_text(source.get("url"), f"{where}.source.url"))
    if source.get("type") == "text" and kind == "file":  # a plain-text document
        return Text(_text(source.get("data"), f"{where}.source.data"))
    raise WireError("A source is base64 data or a URL.", f"{where}.source.type")


def _tool_result(block: dict, where: str) -> ToolResult:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise WireError("A tool_result needs tool_use_id.", f"{where}.tool_use_id")
    content = block.get("content", "")
    texts, media = [], []
    if isinstance(content, str):
        texts.append(content)
    else:
        for i, inner in enumerate(_list(content, f"{where}.content")):
            part = _block(inner, f"{where}.content[{i}]", "user")
            if isinstance(part, Text):
                texts.append(part.text)
            elif isinstance(part, Media):
                media.append(part)
    return ToolResult(call_id, "\n".join(texts), block.get("is_error") is True, tuple(media))


def _block(block: Any, where: str, role: str):
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise WireError("Each content block must be an object with a `type`.", where)
    kind = block["type"]
    if kind == "text":
        return Text(_text(block.get("text"), f"{where}.text"))
    if kind in ("image", "document") and role == "user":
        return _media(block, where)
    if kind == "tool_result" and role == "user":
        return _tool_result(block, where)
    if kind == "tool_use" and role == "assistant":
        name, call_id = block.get("name"), block.get("id")
        if not isinstance(name, str) or not isinstance(call_id, str) or not call_id:
            raise WireError("A tool_use needs an id and a name.", where)
        arguments = block.get("input", {})
        if not isinstance(arguments, dict):
            raise WireError("A tool_use's input must be an object.", f"{where}.input")
        return ToolCall(call_id, name, json.dumps(arguments))
    if kind == "thinking" and role == "assistant":
        signature = block.get("signature", "")
        return Reasoning(
            _text(block.get("thinking"), f"{where}.thinking"),
            signature if isinstance(signature, str) else "",
            format=FORMAT,
        )
    if kind == "redacted_thinking" and role == "assistant":
        return Reasoning(redacted=_text(block.get("data"), f"{where}.data"), format=FORMAT)
    # Server tool blocks, search results and the like mean something to Anthropic only.
    return Opaque(FORMAT, block)


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise WireError("This must be a list.", where)
    return value


def messages_in(raw: Any) -> tuple[Message, ...]:
    """Anthropic turns as neutral messages: a user turn's tool results become tool
    messages (first, as Anthropic orders them), its other blocks a user message."""
    if not isinstance(raw, list) or not raw:
        raise WireError("`messages` must be a non-empty list.", "messages")
    if len(raw) > MAX_MESSAGES:
        raise WireError(f"At most {MAX_MESSAGES} messages.", "messages")
    out: list[Message] = []
    for i, message in enumerate(raw):
        where = f"messages.{i}"
        role = as_dict(message).get("role")
        if role not in ("user", "assistant"):
            raise WireError('A message\'s role is "user" or "assistant".', f"{where}.role")
        content = message.get("content")
        if isinstance(content, str):
            parts = [Text(content)]
        else:
            content = _list(content, f"{where}.content")
            parts = [_block(b, f"{where}.content.{j}", role) for j, b in enumerate(content)]
        results = [p for p in parts if isinstance(p, ToolResult)]
        out += [Message("tool", (r,)) for r in results]
        rest = tuple(p for p in parts if not isinstance(p, ToolResult))
        if rest or not results:
            out.append(Message(role, rest))
    return tuple(out)


def _system(raw: Any) -> str:
    if raw is None or isinstance(raw, str):
        return raw or ""
    blocks = _list(raw, "system")
    texts = [_text(as_dict(b).get("text"), f"system.{i}.text") for i, b in enumerate(blocks)]
    return "\n\n".join(texts)


def tools_in(raw: Any) -> tuple[tuple[Tool, ...], list[str]]:
    """Custom tools as neutral tools, and the names of server tools (web search, code
    execution, bash…), which only an Anthropic upstream can run."""
    if raw is None:
        return (), []
    tools, server = [], []
    for i, tool in enumerate(_list(raw, "tools")):
        where = f"tools.{i}"
        tool = as_dict(tool)
        name = tool.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise WireError("A tool name is 1-128 letters, digits, _ or -.", f"{where}.name")
        if tool.get("type") not in (None, "custom"):
            server.append(f"{name} ({str(tool['type'])[:40]})")
            continue
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise WireError("A tool needs an `input_schema` object.", f"{where}.input_schema")
        description = tool.get("description", "")
        tools.append(Tool(name, _text(description, f"{where}.description"), schema))
    return tuple(tools), server


def tool_choice_in(raw: Any, tools: tuple[Tool, ...]) -> ToolChoice | None:
    if raw is None:
        return None
    raw = as_dict(raw)
    mode = {"auto": "auto", "any": "required", "tool": "tool", "none": "none"}.get(raw.get("type"))
    if mode is None:
        raise WireError("`tool_choice.type` is auto, any, tool or none.", "tool_choice.type")
    name = raw.get("name", "") if mode == "tool" else ""
    if mode == "tool" and name not in {t.name for t in tools}:
        raise WireError("`tool_choice.name` must name one of the tools.", "tool_choice.name")
    parallel = False if raw.get("disable_parallel_tool_use") is True else None
    return ToolChoice(mode, name, parallel)


def _thinking(raw: Any, openai: dict) -> dict:
    """Extended thinking: passed to Anthropic as asked, and to other upstreams as the
    reasoning effort its budget comes closest to."""
    if raw is None:
        return {}
    raw = as_dict(raw)
    if raw.get("type") == "disabled":
        return {"thinking": raw}
    budget = raw.get("budget_tokens")
    if raw.get("type") != "enabled" or isinstance(budget, bool) or not isinstance(budget, int):
        raise WireError(
            '`thinking` is {"type": "enabled", "budget_tokens": N} or {"type": "disabled"}.',
            "thinking",
        )
    openai["reasoning_effort"] = "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"
    return {"thinking": raw}


def read_request(body: Any, counting: bool = False) -> MessagesRequest:
    """Read a caller's Messages body into the neutral prompt. `counting`: a count_tokens
    body, which has no max_tokens and does not stream."""

    model = requested_model(body)
    params: dict[str, Any] = {}
    max_tokens = integer_field(body, "max_tokens", 1)
    if max_tokens is None and not counting:
        raise WireError("`max_tokens` is required.", "max_tokens")
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    for name in ("temperature", "top_p"):
        if (value := number_field(body, name, 0, 1)) is not None:
            params[name] = value
    if (value := integer_field(body, "top_k", 0)) is not None:
        params["top_k"] = value
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
            raise WireError("`stop_sequences` must be a list of strings.", "stop_sequences")
        params["stop"] = stop
    openai: dict[str, Any] = {}
    metadata = body.get("metadata")
    if metadata is not None:
        user = as_dict(metadata).get("user_id")
        if not isinstance(metadata, dict) or not isinstance(user, str | None):
            raise WireError('`metadata` is {"user_id": text}.', "metadata")
        if user:
            openai["user"] = user
    anthropic = _thinking(body.get("thinking"), openai)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise WireError("`stream` must be true or false.", "stream")
    tools, server = tools_in(body.get("tools"))
    prompt = Prompt(
        _system(body.get("system")),
        messages_in(body.get("messages")),
        params,
        tools,
        tool_choice_in(body.get("tool_choice"), tools),
        extra={k: v for k, v in (("openai", openai), (FORMAT, anthropic)) if v},
    )
    unknown = sorted(set(body) - KNOWN)
    why = {}
    if server:
        unknown.append("tools")
        why["tools"] = (
            f"Server tools ({', '.join(server)}) run only on Anthropic's own models; "
            "this model cannot run them."
        )
    return MessagesRequest(model, prompt, stream and not counting, body, unknown, why)


# --- answering ----------------------------------------------------------------------------


def message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def stop_reason(finish: chat.Finish | None) -> str | None:
    if finish is None:
        return None
    if finish.raw in FINISH_OUT.values() or finish.raw in ("stop_sequence", "pause_turn"):
        return finish.raw  # an Anthropic upstream's own word
    return {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
            "content_filter": "refusal"}.get(finish.reason, "end_turn")  # fmt: skip


def usage_out(usage: chat.Usage) -> dict:
    """Anthropic's counts: input_tokens excludes what was read from or written to the
    prompt cache (the neutral prompt_tokens counts all input)."""
    read, wrote = usage.cache_read_tokens or 0, usage.cache_write_tokens or 0
    out = {
        "input_tokens": max((usage.prompt_tokens or 0) - read - wrote, 0),
        "output_tokens": usage.completion_tokens or 0,
    }
    if usage.cache_read_tokens is not None or usage.cache_write_tokens is not None:
        out |= {"cache_creation_input_tokens": wrote, "cache_read_input_tokens": read}
    return out


def block_out(part) -> dict | None:
    if isinstance(part, Text | Refusal):
        return {"type": "text", "text": part.text} if part.text else None
    if isinstance(part, ToolCall):
        try:
            arguments = json.loads(part.arguments or "{}")
        except (ValueError, RecursionError):
            arguments = {"input": part.arguments}
        arguments = arguments if isinstance(arguments, dict) else {"input": arguments}
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": arguments}
    if isinstance(part, Reasoning):
        if part.redacted:
            return {"type": "redacted_thinking", "data": part.redacted}
        signature = part.signature if part.format == FORMAT else ""
        return {"type": "thinking", "thinking": part.text, "signature": signature}
    if isinstance(part, Opaque) and part.format == FORMAT:
        return part.raw
    return None


def write_reply(completion: Completion, model: str) -> dict:
    content = [b for b in (block_out(p) for p in completion.message.parts) if b is not None]
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(completion.finish),
        "stop_sequence": None,
        "usage": usage_out(completion.usage),
    }


def error_body(message: str, type_: str) -> dict:
    return {"type": "error", "error": {"type": type_, "message": message}}


def sse(data: dict) -> bytes:
    return f"event: {data.get('type', 'message')}\ndata: {json.dumps(data)}\n\n".encode()


PING = sse({"type": "ping"})
STARTS = {
    "text": {"type": "text", "text": ""},
    "reasoning": {"type": "thinking", "thinking": "", "signature": ""},
}
DELTAS = {"text": ("text_delta", "text"), "reasoning": ("thinking_delta", "thinking"),
          "tool_call": ("input_json_delta", "partial_json")}  # fmt: skip


class StreamWriter:
    """Neutral events as Anthropic's stream: message_start, then one content block at a
    time (start, deltas, stop; blocks numbered 0, 1, … in order), message_delta with the
    stop reason and usage, message_stop. A break is an `error` event instead of the end."""

    def __init__(self, model: str, input_tokens: int):
        self.id, self.model, self.input_tokens = message_id(), model, input_tokens
        self.blocks: dict[int, int] = {}  # neutral index -> Anthropic index
        self.kinds: dict[int, str] = {}
        self.open: int | None = None
        self.started = False

    def opening(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        message = {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 1},
        }  # fmt: skip
        return sse({"type": "message_start", "message": message}) + PING

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        index, self.open = self.blocks[self.open], None
        return sse({"type": "content_block_stop", "index": index})

    def _start(self, index: int, kind: str, call_id: str = "", name: str = "") -> bytes:
        out = self.opening() + self._close()
        self.blocks[index], self.kinds[index], self.open = len(self.blocks), kind, index
        block = STARTS.get(kind) or {"type": "tool_use", "id": call_id, "name": name, "input": {}}
        return out + sse(
            {"type": "content_block_start", "index": self.blocks[index], "content_block": block}
        )

    def event(self, event) -> bytes:
        if isinstance(event, BlockStarted):
            kind = "text" if event.kind not in DELTAS else event.kind
            return self._start(event.index, kind, event.call_id, event.name)
        if isinstance(event, BlockDelta) and (event.text or event.signature):
            out = b""
            if event.index not in self.blocks:
                out += self._start(event.index, "text" if event.kind not in DELTAS else event.kind)
            kind, index = self.kinds[event.index], self.blocks[event.index]
            if event.text:
                name, key = DELTAS[kind]
                delta = {"type": name, key: event.text}
                out += sse({"type": "content_block_delta", "index": index, "delta": delta})
            if event.signature and kind == "reasoning":
                delta = {"type": "signature_delta", "signature": event.signature}
                out += sse({"type": "content_block_delta", "index": index, "delta": delta})
            return out
        if isinstance(event, BlockEnded) and event.index == self.open:
            return self._close()
        return b""

    def end(self, finish: chat.Finish | None, usage: chat.Usage, error: str = "") -> bytes:
        out = self.opening() + self._close()
        if error:
            return out + sse(error_body(error, "api_error"))
        delta = {"stop_reason": stop_reason(finish), "stop_sequence": None}
        out += sse({"type": "message_delta", "delta": delta, "usage": usage_out(usage)})
        return out + sse({"type": "message_stop"})


class Tap:
    """An Anthropic upstream's events on their way to a caller of the same format: each
    block's streamed text (text, thinking, tool input) through a stream scrubber of its
    own, its tail sent before the block's stop; a signature held to the block's stop and
    sent only if the thinking went out unchanged; the rest scrubbed whole; the model
    named as the caller named it. The events are also read on the side, for metering."""

    def __init__(self, scrubber, model: str):
        self.scrubber, self.model = scrubber, model
        self.reader = StreamReader()
        self.accumulator = chat.Accumulator()
        self.live: dict[int, Any] = {}
        self.kinds: dict[int, str] = {}
        self.raw: dict[int, list[str]] = {}
        self.shown: dict[int, list[str]] = {}
        self.signatures: dict[int, list[str]] = {}

    def _scrub(self, index: int, text: str) -> str:
        self.raw[index].append(text)
        shown = self.live[index].feed(text)
        self.shown[index].append(shown)
        return shown

    def feed(self, data: Any) -> list:
        for event in self.reader.feed(data):
            self.accumulator.feed(event)
        if not isinstance(data, dict):
            return []
        kind, index = data.get("type"), data.get("index")
        if kind == "message_start":
            message = self.scrubber.json(as_dict(data.get("message")))
            return [dict(self.scrubber.json(data), message=message | {"model": self.model})]
        if kind == "content_block_start" and isinstance(index, int):
            block = dict(as_dict(data.get("content_block")))
            self.kinds[index] = {"thinking": "reasoning", "tool_use": "tool_call"}.get(
                block.get("type"), "text"
            )
            self.live[index] = self.scrubber.stream()
            self.raw[index], self.shown[index], self.signatures[index] = [], [], []
            for key in ("text", "thinking"):
                if isinstance(block.get(key), str) and block[key]:
                    block[key] = self._scrub(index, block[key])
            if block.get("signature"):
                self.signatures[index].append(block.pop("signature"))
                block["signature"] = ""
            rest = self.scrubber.json(
                {k: v for k, v in block.items() if k not in ("text", "thinking")}
            )
            return [{"type": kind, "index": index, "content_block": block | rest}]
        if kind == "content_block_delta" and index in self.live:
            delta = as_dict(data.get("delta"))
            if delta.get("type") == "signature_delta":
                self.signatures[index].append(str(delta.get("signature") or ""))
                return []
            for key in ("text", "thinking", "partial_json"):
                if isinstance(delta.get(key), str):
                    shown = self._scrub(index, delta[key])
                    return [{**data, "delta": dict(delta, **{key: shown})}] if shown else []
            return [self.scrubber.json(data)]
        if kind == "content_block_stop" and index in self.live:
            return self._close(index) + [self.scrubber.json(data)]
        if kind == "message_delta" or kind == "message_stop":
            return [self.scrubber.json(data)]
        return [self.scrubber.json(data)]

    def _close(self, index: int) -> list:
        out = []
        tail = self.live.pop(index).flush()
        kind = self.kinds[index]
        if tail:
            self.shown[index].append(tail)
            name, key = DELTAS[kind]
            out.append({"type": "content_block_delta", "index": index,
                        "delta": {"type": name, key: tail}})  # fmt: skip
        signature = "".join(self.signatures.pop(index, []))
        if signature and "".join(self.raw[index]) == "".join(self.shown[index]):
            delta = {"type": "signature_delta", "signature": signature}
            out.append({"type": "content_block_delta", "index": index, "delta": delta})
        return out

    def end(self) -> list:
        """What scrubbers still hold when a stream ends without its blocks' stops."""
        for event in self.reader.end():
            self.accumulator.feed(event)
        out = []
        for index in list(self.live):
            out += self._close(index)
        return out
