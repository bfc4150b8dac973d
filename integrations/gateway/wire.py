"""OpenAI's chat-completions wire format, read into a Prompt and written from a CallResult.

Any protocol the console speaks can serve it: the adapters translate the Prompt to
Anthropic, Azure, legacy completions or a custom template and back. Parameters that
only OpenAI-shaped upstreams understand (tools, response_format, seed) pass through to
those and are refused, by name, for the others.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from integrations.llm.config import CallResult, Prompt, Usage

OPENAI_SHAPED = {"openai-chat", "azure-openai"}
PASS_THROUGH = ("tools", "tool_choice", "response_format", "seed", "parallel_tool_calls")
IGNORED = ("user", "stream_options", "logit_bias", "metadata", "store", "service_tier")
NUMBERS = {"temperature": (0, 2), "top_p": (0, 1)}
MAX_MESSAGES = 1000


class WireError(Exception):
    """A request the gateway cannot serve: 400 unless said otherwise, in OpenAI's shape."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_request"):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


@dataclass
class ChatRequest:
    model: str
    prompt: Prompt
    stream: bool
    include_usage: bool
    messages: list  # as sent, for keys that store prompts


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise WireError("Only text content is supported.", where, "unsupported_content")
            if not isinstance(part.get("text"), str):
                raise WireError("A text part needs a string `text`.", where)
            parts.append(part["text"])
        return "".join(parts)
    if content is None:
        return ""
    raise WireError("`content` must be a string or a list of text parts.", where)


def _messages(raw: Any) -> tuple[str, list[dict]]:
    if not isinstance(raw, list) or not raw:
        raise WireError("`messages` must be a non-empty list.", "messages")
    if len(raw) > MAX_MESSAGES:
        raise WireError(f"At most {MAX_MESSAGES} messages.", "messages")
    system: list[str] = []
    turns: list[dict] = []
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise WireError("Each message must be an object.", where)
        role = message.get("role")
        text = _text(message.get("content"), f"{where}.content")
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            if role == "assistant" and message.get("tool_calls"):
                raise WireError(
                    "Assistant tool calls in the history are not supported.",
                    where,
                    "unsupported_parameter",
                )
            turns.append({"role": role, "content": text})
        elif role in ("tool", "function"):
            raise WireError(
                "Tool results are not supported through the gateway yet.",
                where,
                "unsupported_parameter",
            )
        else:
            raise WireError(f"Unknown role {str(role)[:20]!r}.", f"{where}.role")
    if not turns:
        raise WireError("Send at least one user message.", "messages")
    return "\n\n".join(system), turns


def _number(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise WireError(f"`{name}` must be a number from {low} to {high}.", name)
    return value


def _max_tokens(body: dict) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
            raise WireError(f"`{name}` must be a positive integer.", name)
        return value
    return None


def _stop(body: dict) -> list[str] | None:
    stop = body.get("stop")
    if stop is None:
        return None
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop):
        raise WireError("`stop` must be a string or up to 4 strings.", "stop")
    return stop


def parse(body: Any, protocol_of) -> ChatRequest:
    """Read an OpenAI chat-completions body. `protocol_of(model_name)` tells which wire the
    upstream speaks, for the parameters only OpenAI-shaped upstreams take."""
    if not isinstance(body, dict):
        raise WireError("The body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise WireError("`model` is required.", "model")
    system, turns = _messages(body.get("messages"))
    params: dict[str, Any] = {}
    for name, (low, high) in NUMBERS.items():
        if (value := _number(body, name, low, high)) is not None:
            params[name] = value
    if (max_tokens := _max_tokens(body)) is not None:
        params["max_tokens"] = max_tokens
    if (stop := _stop(body)) is not None:
        params["stop"] = stop
    n = body.get("n", 1)
    if n != 1:
        raise WireError("Only n=1 is supported.", "n", "unsupported_parameter")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise WireError("`stream` must be true or false.", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise WireError("`stream_options` must be an object.", "stream_options")
    extra = {k: body[k] for k in PASS_THROUGH if body.get(k) is not None}
    if extra:
        protocol = protocol_of(model)
        if protocol is not None and protocol not in OPENAI_SHAPED:
            name = next(iter(extra))
            raise WireError(
                f"`{name}` is not supported for this model: its integration speaks "
                f"{protocol}, and only OpenAI-shaped upstreams take {', '.join(extra)}.",
                name,
                "unsupported_parameter",
            )
        if stream and ("tools" in extra or "tool_choice" in extra):
            raise WireError(
                "Streaming with tools is not supported yet; send stream=false.",
                "tools",
                "unsupported_parameter",
            )
        params.update(extra)
    unknown = set(body) - {"model", "messages", "n", "stream", "stop", "max_tokens"}
    unknown -= {"max_completion_tokens", *NUMBERS, *PASS_THROUGH, *IGNORED}
    unknown -= {"frequency_penalty", "presence_penalty"}
    if unknown:
        name = sorted(unknown)[0]
        raise WireError(f"`{name}` is not supported.", name, "unsupported_parameter")
    for penalty in ("frequency_penalty", "presence_penalty"):
        if body.get(penalty) not in (None, 0, 0.0):
            raise WireError(f"`{penalty}` is not supported.", penalty, "unsupported_parameter")
    user = (
        next(t["content"] for t in reversed(turns) if t["role"] == "user")
        if any(t["role"] == "user" for t in turns)
        else ""
    )
    prompt = Prompt(system=system, user=user, params=params, turns=tuple(turns))
    return ChatRequest(model, prompt, stream, bool(options.get("include_usage")), body["messages"])


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def usage_dict(usage: Usage) -> dict:
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    total = usage.total_tokens if usage.total_tokens is not None else prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def completion(result: CallResult, model: str, passthrough: bool) -> dict:
    """A chat.completion object. For an OpenAI-shaped upstream the message is the
    upstream's own (scrubbed), so tool calls and refusals come through."""
    message: dict[str, Any] = {"role": "assistant", "content": result.content}
    upstream = result.raw_json if isinstance(result.raw_json, dict) else {}
    choices = upstream.get("choices") if passthrough else None
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        original = choices[0].get("message")
        if isinstance(original, dict):
            message = {
                k: v
                for k, v in original.items()
                if k in ("role", "content", "tool_calls", "refusal")
            }
            message["role"] = "assistant"
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": result.finish_reason or "stop"}
        ],
        "usage": usage_dict(result.usage),
    }


def chunk(cid: str, model: str, delta: dict, finish: str | None = None, usage=None) -> dict:
    data: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": []
        if usage is not None
        else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        data["usage"] = usage
    return data


# How a classified upstream failure answers an OpenAI client.
STATUS_FOR_KIND = {"rate_limited": 429, "timeout": 504}


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None):
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


class Chunks:
    """Content chunks of one stream, built from a prefix made once: a stream writes one
    per token, so the envelope is not rebuilt and re-encoded every time."""

    def __init__(self, cid: str, model: str):
        envelope = json.dumps(chunk(cid, model, {"content": ""}))
        self.head, _, self.tail = envelope.partition('""')

    def content(self, text: str) -> bytes:
        return f"data: {self.head}{json.dumps(text)}{self.tail}\n\n".encode()
