"""The neutral conversation: what every door reads into and every upstream is written from.

The Test button, the Sandbox, the REST chat and the gateway's doors all speak this; each
wire format (integrations/llm/wires/) translates it to and from its own shape in one
module. Plain frozen dataclasses, no Django. Translation never mutates its input: a
retry sends the same object again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

ROLES = ("system", "user", "assistant", "tool")
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "error", "other")


# --- parts of a message ----------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Media:
    """An image, a file or audio: a URL, or base64 data with its media type."""

    kind: str = "image"
    url: str = ""
    data: str = ""
    media_type: str = ""
    detail: str = ""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str = "{}"  # JSON text as the model produced it; parsed only at the end


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    content: str = ""
    is_error: bool = False
    media: tuple[Media, ...] = ()


@dataclass(frozen=True)
class Reasoning:
    """Thinking: its text, the signature that lets it be sent back, or redacted data, and
    the format that minted it (a signature means nothing to another provider)."""

    text: str = ""
    signature: str = ""
    redacted: str = ""
    format: str = ""


@dataclass(frozen=True)
class Refusal:
    text: str


@dataclass(frozen=True)
class Opaque:
    """A block only one format understands, passed back only to that format."""

    format: str
    raw: Any = None


Part = Text | Media | ToolCall | ToolResult | Reasoning | Refusal | Opaque


@dataclass(frozen=True)
class Message:
    role: str
    parts: tuple[Part, ...] = ()
    name: str = ""

    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(p for p in self.parts if isinstance(p, ToolCall))

    @property
    def tool_results(self) -> tuple[ToolResult, ...]:
        return tuple(p for p in self.parts if isinstance(p, ToolResult))


def text_message(role: str, text: str) -> Message:
    return Message(role, (Text(text),) if text else ())


# --- what a request asks for -------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    description: str = ""
    parameters: dict | None = None  # JSON Schema
    strict: bool | None = None


@dataclass(frozen=True)
class ToolChoice:
    mode: str = "auto"  # auto | none | required | tool
    name: str = ""  # with mode "tool"
    parallel: bool | None = None  # may the model call several tools at once


@dataclass(frozen=True)
class OutputFormat:
    kind: str = "text"  # text | json_object | json_schema
    schema: dict | None = None
    name: str = ""
    strict: bool | None = None


@dataclass(frozen=True)
class Prompt:
    """A conversation to send. `params` holds the sampling parameters every format
    models (temperature, top_p, max_tokens, stop, seed, top_k); `extra` holds, per format,
    what only that format knows ({"openai": {"logit_bias": …}}); `overrides` names the
    parameters a person set over a value fixed in the model's request body."""

    system: str = ""
    messages: tuple[Message, ...] = ()
    params: dict = field(default_factory=dict)
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    output: OutputFormat | None = None
    extra: dict = field(default_factory=dict)
    overrides: frozenset = frozenset()

    @classmethod
    def of(cls, system="", user="", params=None, turns=None, overrides=()) -> Prompt:
        """A text conversation: user and assistant `turns` ({"role", "content"}) ending with
        a user turn, or just the `user` text."""
        if turns:
            messages = tuple(text_message(t["role"], t["content"]) for t in turns)
        else:
            messages = (text_message("user", user),)
        return cls(system, messages, dict(params or {}), overrides=frozenset(overrides))

    @property
    def user(self) -> str:
        """The last user message's text (for templates that take one user prompt)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text()
        return ""

    @property
    def turns(self) -> tuple[dict, ...]:
        """The conversation as text turns, for what stores or shows text only."""
        return tuple(
            {"role": m.role, "content": m.text()}
            for m in self.messages
            if m.role in ("user", "assistant")
        )

    def conversation(self) -> list[dict]:
        return list(self.turns)

    def text(self) -> str:
        """Everything the prompt says, for estimating its tokens: text, tool calls and
        results, and the tools' schemas (they are sent too)."""
        out = [self.system]
        for message in self.messages:
            for part in message.parts:
                if isinstance(part, Text | Refusal):
                    out.append(part.text)
                elif isinstance(part, ToolCall):
                    out.append(part.name + part.arguments)
                elif isinstance(part, ToolResult):
                    out.append(part.content)
                elif isinstance(part, Reasoning):
                    out.append(part.text)
        for tool in self.tools:
            out.append(tool.name + tool.description + json.dumps(tool.parameters or {}))
        return "\n".join(t for t in out if t)

    def has(self, kind: type) -> bool:
        return any(isinstance(p, kind) for m in self.messages for p in m.parts)


@dataclass(frozen=True)
class EmbeddingsInput:
    """What an embeddings model is asked: texts (or token-id lists, which OpenAI-shaped
    servers take) and, optionally, how many dimensions the vectors should have."""

    texts: tuple = ()
    dimensions: int | None = None
    params: dict = field(default_factory=dict)  # none apply; here so limits read it alike
    overrides: frozenset = frozenset()

    def text(self) -> str:
        """The input as text, for estimating its tokens (a token list counts its ids)."""
        return "\n".join(t if isinstance(t, str) else " x" * len(t) for t in self.texts)


# --- what comes back -------------------------------------------------------------------


@dataclass(frozen=True)
class Finish:
    reason: str = "stop"  # one of FINISH_REASONS
    raw: str = ""  # as the upstream said it


@dataclass
class Usage:
    """Token counts. `prompt_tokens` is all input (OpenAI's meaning), cache reads and
    writes included. None: not reported."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def reported(self) -> bool:
        return any(
            v is not None for v in (self.prompt_tokens, self.completion_tokens, self.total_tokens)
        )

    def merged(self, later: Usage) -> Usage:
        """A later report replaces an earlier one field by field; an absent field never
        overwrites (streams report usage cumulatively, in pieces)."""
        values = {f.name: getattr(later, f.name) for f in fields(self)}
        usage = replace(self, **{k: v for k, v in values.items() if v is not None})
        if later.total_tokens is None and None not in (
            usage.prompt_tokens,
            usage.completion_tokens,
        ):
            usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
        return usage


@dataclass(frozen=True)
class Completion:
    message: Message
    finish: Finish
    usage: Usage = field(default_factory=Usage)
    id: str = ""
    model: str = ""


@dataclass(frozen=True)
class Vectors:
    """An embeddings answer: one vector per input, in input order."""

    vectors: tuple[tuple[float, ...], ...]
    usage: Usage = field(default_factory=Usage)

    @property
    def dimensions(self) -> int:
        return len(self.vectors[0]) if self.vectors else 0

    def summary(self) -> str:
        count = len(self.vectors)
        return f"{count} vector{'s' if count != 1 else ''} of {self.dimensions} dimensions"


# --- a stream, as events ---------------------------------------------------------------


@dataclass(frozen=True)
class BlockStarted:
    index: int
    kind: str  # text | tool_call | reasoning
    call_id: str = ""
    name: str = ""


@dataclass(frozen=True)
class BlockDelta:
    index: int
    kind: str
    text: str = ""  # text, a reasoning fragment, or a tool call's arguments fragment
    signature: str = ""


@dataclass(frozen=True)
class BlockEnded:
    index: int


@dataclass(frozen=True)
class UsageSeen:
    usage: Usage


@dataclass(frozen=True)
class Finished:
    finish: Finish


Event = BlockStarted | BlockDelta | BlockEnded | UsageSeen | Finished


class Accumulator:
    """Folds stream events into a completion (for metering, and for a caller that did not
    stream from an upstream that did)."""

    def __init__(self):
        self.blocks: dict[int, dict] = {}
        self.usage = Usage()
        self.finish: Finish | None = None

    def feed(self, event: Event) -> None:
        if isinstance(event, BlockStarted):
            self.blocks[event.index] = {
                "kind": event.kind, "id": event.call_id, "name": event.name, "text": [], "sig": [],
            }  # fmt: skip
        elif isinstance(event, BlockDelta):
            block = self.blocks.setdefault(
                event.index, {"kind": event.kind, "id": "", "name": "", "text": [], "sig": []}
            )
            block["text"].append(event.text)
            if event.signature:
                block["sig"].append(event.signature)
        elif isinstance(event, UsageSeen):
            self.usage = self.usage.merged(event.usage)
        elif isinstance(event, Finished):
            self.finish = event.finish

    @property
    def text(self) -> str:
        return "".join("".join(b["text"]) for b in self._ordered() if b["kind"] == "text")

    def _ordered(self) -> list[dict]:
        return [self.blocks[i] for i in sorted(self.blocks)]

    def message(self) -> Message:
        parts: list[Part] = []
        for block in self._ordered():
            text = "".join(block["text"])
            if block["kind"] == "tool_call":
                parts.append(ToolCall(block["id"], block["name"], text or "{}"))
            elif block["kind"] == "reasoning":
                parts.append(Reasoning(text, "".join(block["sig"])))
            elif text:
                parts.append(Text(text))
        return Message("assistant", tuple(parts))

    def completion(self) -> Completion:
        message = self.message()
        return Completion(message, settled_finish(self.finish, message), self.usage)


def settled_finish(finish: Finish | None, message: Message) -> Finish:
    """A finish as callers should see it: an upstream that says "stop" after calling
    tools means "tool_calls". None stays None for the caller to call a truncation."""
    if finish is None:
        return None
    if finish.reason == "stop" and message.tool_calls:
        return Finish("tool_calls", finish.raw)
    return finish


def finish_from(table: dict[str, str], raw: Any) -> Finish | None:
    """Map a raw finish reason through a format's table; an unknown one is "other",
    never an exception and never a silent "stop". No reason at all is None."""
    if not isinstance(raw, str) or not raw:
        return None
    return Finish(table.get(raw, "other"), raw)


def reverse(table: dict[str, str]) -> dict[str, str]:
    """The table the other way (the first raw value for each unified one)."""
    out: dict[str, str] = {}
    for raw, unified in table.items():
        out.setdefault(unified, raw)
    return out
