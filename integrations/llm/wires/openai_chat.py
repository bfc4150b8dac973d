"""OpenAI chat completions (Azure OpenAI too), both directions.

Upstream side: `write_request` builds the body for an OpenAI-shaped server; `read_reply`
and `StreamReader` read its answers leniently (untrusted input: a wrong type is a
ValueError the client classifies, never a 500). Door side (the gateway's
/v1/chat/completions): `read_request` reads a caller's body strictly, naming the field
it refuses; `write_reply` and `StreamWriter` answer in OpenAI's shape. The messages,
tools and finish reasons are one table and one codec each, used both ways.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from integrations.llm import chat
from integrations.llm.chat import (
    BlockDelta,
    BlockEnded,
    BlockStarted,
    Completion,
    Finished,
    Media,
    Message,
    OutputFormat,
    Prompt,
    Reasoning,
    Refusal,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    UsageSeen,
)
from integrations.llm.wires.common import (
    UpstreamError,
    WireError,
    as_dict,
    as_list,
    as_text,
    extra,
    integer_field,
    make_usage,
    merged_params,
    number_field,
    requested_model,
    stop_list,
)

FORMAT = "openai"
FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
FINISH_OUT = chat.reverse(FINISH)
# What a caller may send that only OpenAI-shaped servers take: kept in Prompt.extra.
ONLY_OPENAI = (
    "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "logit_bias", "n",
    "user", "metadata", "store", "service_tier", "reasoning_effort", "prediction",
    "parallel_tool_calls", "modalities", "audio", "web_search_options", "verbosity",
    "prompt_cache_key", "safety_identifier",
)  # fmt: skip
NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
MAX_MESSAGES = 2000


# --- the codec: messages, tools and formats, both ways -------------------------------------


def _media_in(part: dict, where: str, strict: bool) -> Media | None:
    kind = part.get("type")
    if kind == "image_url":
        image = part.get("image_url")
        url = image if isinstance(image, str) else as_text(as_dict(image).get("url"))
        if not url:
            return _bad(strict, "An image part needs image_url.url.", where)
        detail = as_text(as_dict(image).get("detail"))
        match = re.match(r"data:([\w/+.-]+);base64,(.*)", url, re.S)
        if match:
            return Media("image", data=match.group(2), media_type=match.group(1), detail=detail)
        return Media("image", url=url, detail=detail)
    if kind == "input_audio":
        audio = as_dict(part.get("input_audio"))
        return Media(
            "audio",
            data=as_text(audio.get("data")),
            media_type=f"audio/{audio.get('format', 'wav')}",
        )
    if kind == "file":
        file = as_dict(part.get("file"))
        data = as_text(file.get("file_data"))
        match = re.match(r"data:([\w/+.-]+);base64,(.*)", data, re.S)
        if match:
            return Media("file", data=match.group(2), media_type=match.group(1))
        return Media("file", url=as_text(file.get("file_id")), data=data)
    return None


def _bad(strict: bool, message: str, where: str):
    if strict:
        raise WireError(message, where)
    return None


def _parts_in(content: Any, where: str, strict: bool) -> list:
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(content)] if content else []
    if not isinstance(content, list):
        _bad(strict, "`content` must be a string, a list of parts or null.", where)
        return []
    parts = []
    for i, part in enumerate(content):
        at = f"{where}[{i}]"
        if not isinstance(part, dict):
            _bad(strict, "Each content part must be an object.", at)
            continue
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                _bad(strict, "A text part needs a string `text`.", at)
                continue
            parts.append(Text(part["text"]))
        elif kind == "refusal":
            parts.append(Refusal(as_text(part.get("refusal"))))
        elif (media := _media_in(part, at, strict)) is not None:
            parts.append(media)
        else:
            _bad(strict, f"Unknown content part type {str(kind)[:30]!r}.", f"{at}.type")
    return parts


def tool_calls_in(raw: Any, where: str, strict: bool) -> list:
    if strict and raw is not None:
        _list(raw, where)
    calls = []
    for i, call in enumerate(as_list(raw)):
        at = f"{where}[{i}]"
        function = as_dict(as_dict(call).get("function"))
        name, arguments = function.get("name"), function.get("arguments", "")
        if strict and (not isinstance(name, str) or not name):
            raise WireError("A tool call needs function.name.", f"{at}.function.name")
        if strict and not isinstance(arguments, str):
            raise WireError("function.arguments must be JSON text.", f"{at}.function.arguments")
        call_id = as_dict(call).get("id")
        calls.append(
            ToolCall(as_text(call_id) or f"call_{i}", as_text(name), as_text(arguments) or "{}")
        )
    return calls


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise WireError("Must be a list.", where)
    return value


def _reasoning_in(message: dict) -> list:
    out = []
    for block in as_list(message.get("thinking_blocks")):  # LiteLLM's way to carry them
        block = as_dict(block)
        if block.get("type") == "redacted_thinking":
            out.append(Reasoning(redacted=as_text(block.get("data")), format="anthropic"))
        else:
            out.append(
                Reasoning(
                    as_text(block.get("thinking")),
                    as_text(block.get("signature")),
                    format="anthropic",
                )
            )
    text = message.get("reasoning_content")
    if not out and isinstance(text, str) and text:
        out.append(Reasoning(text, format=FORMAT))
    return out


def messages_in(raw: Any, strict: bool = True) -> tuple[str, tuple[Message, ...]]:
    """Read OpenAI messages: the system text (system and developer messages, joined)
    and the conversation."""
    if strict and (not isinstance(raw, list) or not raw):
        raise WireError("`messages` must be a non-empty list.", "messages")
    if strict and len(raw) > MAX_MESSAGES:
        raise WireError(f"At most {MAX_MESSAGES} messages.", "messages")
    system: list[str] = []
    messages: list[Message] = []
    for i, message in enumerate(as_list(raw)):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            _bad(strict, "Each message must be an object.", where)
            continue
        role = message.get("role")
        parts = _parts_in(message.get("content"), f"{where}.content", strict)
        if role in ("system", "developer"):
            system.append("".join(p.text for p in parts if isinstance(p, Text)))
        elif role == "user":
            messages.append(Message("user", tuple(parts), as_text(message.get("name"))))
        elif role == "assistant":
            if isinstance(message.get("refusal"), str) and message["refusal"]:
                parts.append(Refusal(message["refusal"]))
            calls = tool_calls_in(message.get("tool_calls"), f"{where}.tool_calls", strict)
            messages.append(Message("assistant", tuple(_reasoning_in(message) + parts + calls)))
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if strict and (not isinstance(call_id, str) or not call_id):
                raise WireError("A tool message needs tool_call_id.", f"{where}.tool_call_id")
            text = "".join(p.text for p in parts if isinstance(p, Text))
            result = ToolResult(
                as_text(call_id), text, media=tuple(p for p in parts if isinstance(p, Media))
            )
            messages.append(Message("tool", (result,)))
        elif strict:
            hint = ' Use tools and role "tool".' if role == "function" else ""
            raise WireError(f"Unknown role {str(role)[:20]!r}.{hint}", f"{where}.role")
    if strict and not any(m.role in ("user", "tool") for m in messages):
        raise WireError("Send at least one user message.", "messages")
    return "\n\n".join(t for t in system if t), tuple(messages)


def _media_out(media: Media) -> dict:
    url = media.url or f"data:{media.media_type or 'image/png'};base64,{media.data}"
    if media.kind == "audio":
        return {
            "type": "input_audio",
            "input_audio": {"data": media.data, "format": media.media_type.split("/")[-1] or "wav"},
        }
    if media.kind == "file":
        return {"type": "file", "file": {"file_data": url}}
    image = {"url": url} | ({"detail": media.detail} if media.detail else {})
    return {"type": "image_url", "image_url": image}


def message_out(message: Message) -> list[dict]:
    """A neutral message as OpenAI messages (tool results are one message each)."""
    if message.role == "tool":
        return [
            {"role": "tool", "tool_call_id": r.call_id, "content": r.content}
            for r in message.tool_results
        ]
    media = [p for p in message.parts if isinstance(p, Media)]
    text = message.text()
    if message.role == "assistant":
        out: dict[str, Any] = {"role": "assistant", "content": text or None}
        refusal = "".join(p.text for p in message.parts if isinstance(p, Refusal))
        if refusal:
            out["refusal"] = refusal
        if message.tool_calls:
            out["tool_calls"] = [tool_call_out(c) for c in message.tool_calls]
        return [out]
    content: Any = text
    if media:
        content = [{"type": "text", "text": p.text} if isinstance(p, Text) else _media_out(p)
                   for p in message.parts if isinstance(p, Text | Media)]  # fmt: skip
    out = {"role": message.role, "content": content}
    if message.name:
        out["name"] = message.name
    return [out]


def tool_call_out(call: ToolCall) -> dict:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def tools_in(raw: Any) -> tuple[Tool, ...]:
    if raw is None:
        return ()
    tools = []
    for i, tool in enumerate(_list(raw, "tools")):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            kind = as_dict(tool).get("type") if isinstance(tool, dict) else tool
            raise WireError(
                f"Only function tools are supported, not {str(kind)[:30]!r}.",
                f"{where}.type",
                "unsupported_parameter",
            )
        function = tool.get("function")
        if not isinstance(function, dict):
            raise WireError("A tool needs a `function` object.", f"{where}.function")
        name = function.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise WireError(
                "A function name is 1-64 letters, digits, _ or -.", f"{where}.function.name"
            )
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise WireError(
                "`parameters` must be a JSON Schema object.", f"{where}.function.parameters"
            )
        description = function.get("description", "")
        if not isinstance(description, str):
            raise WireError("`description` must be text.", f"{where}.function.description")
        strict = function.get("strict")
        tools.append(
            Tool(name, description, parameters, strict if isinstance(strict, bool) else None)
        )
    return tuple(tools)


def tool_out(tool: Tool) -> dict:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def tool_choice_in(raw: Any, parallel: Any, tools: tuple[Tool, ...]) -> ToolChoice | None:
    if parallel is not None and not isinstance(parallel, bool):
        raise WireError("`parallel_tool_calls` must be true or false.", "parallel_tool_calls")
    if raw is None:
        return ToolChoice(parallel=parallel) if parallel is not None else None
    if raw in ("auto", "none", "required"):
        return ToolChoice(raw, parallel=parallel)
    name = as_text(as_dict(as_dict(raw).get("function")).get("name"))
    if as_dict(raw).get("type") == "function" and name:
        if name not in {t.name for t in tools}:
            raise WireError(f"tool_choice names {name!r}, which is not in `tools`.", "tool_choice")
        return ToolChoice("tool", name, parallel)
    raise WireError('`tool_choice` is "auto", "none", "required" or a function.', "tool_choice")


def tool_choice_out(choice: ToolChoice) -> Any:
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def output_in(raw: Any) -> OutputFormat | None:
    if raw is None:
        return None
    kind = as_dict(raw).get("type")
    if kind in ("text", "json_object"):
        return OutputFormat(kind)
    if kind == "json_schema":
        spec = as_dict(raw.get("json_schema"))
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            raise WireError(
                "json_schema.schema must be a JSON Schema object.",
                "response_format.json_schema.schema",
            )
        strict = spec.get("strict")
        return OutputFormat(
            "json_schema",
            schema,
            as_text(spec.get("name")) or "output",
            strict if isinstance(strict, bool) else None,
        )
    raise WireError(
        '`response_format.type` is "text", "json_object" or "json_schema".', "response_format"
    )


def output_out(output: OutputFormat) -> dict:
    if output.kind != "json_schema":
        return {"type": output.kind}
    spec: dict[str, Any] = {"name": output.name or "output", "schema": output.schema or {}}
    if output.strict is not None:
        spec["strict"] = output.strict
    return {"type": "json_schema", "json_schema": spec}


def usage_in(data: Any) -> chat.Usage:
    usage = as_dict(as_dict(data).get("usage"))
    return make_usage(
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        usage.get("total_tokens"),
        cache_read_tokens=as_dict(usage.get("prompt_tokens_details")).get("cached_tokens"),
        reasoning_tokens=as_dict(usage.get("completion_tokens_details")).get("reasoning_tokens"),
    )


def usage_out(usage: chat.Usage, estimated: bool = False) -> dict:
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": usage.total_tokens
        if usage.total_tokens is not None
        else prompt + completion,
    }
    if usage.cache_read_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cache_read_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    if estimated:
        out["estimated"] = True  # the upstream reported none: these are the console's estimates
    return out


# --- upstream side ----------------------------------------------------------------------------


def write_request(config, prompt: Prompt, azure: bool = False) -> dict:
    """The body for an OpenAI-shaped upstream (Azure picks the model by its URL)."""
    messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
    for message in prompt.messages:
        messages += message_out(message)
    body: dict[str, Any] = {} if azure else {"model": config.model_id}
    body["messages"] = messages
    params = merged_params(config, prompt)
    if "stop" in params:
        params["stop"] = stop_list(params["stop"])
    body.update(params)
    if prompt.tools:
        body["tools"] = [tool_out(t) for t in prompt.tools]
    choice = prompt.tool_choice
    if choice is not None:
        if prompt.tools or choice.mode == "none":
            body["tool_choice"] = tool_choice_out(choice)
        if choice.parallel is not None and prompt.tools:
            body["parallel_tool_calls"] = choice.parallel
    if prompt.output is not None:
        body["response_format"] = output_out(prompt.output)
    body.update(extra(prompt, FORMAT))
    return body


def read_reply(data: Any, config=None, prompt=None) -> Completion:
    choice = as_dict((data.get("choices") or [None])[0]) if isinstance(data, dict) else {}
    if not choice:
        raise ValueError("The answer has no choices[0].")
    message = choice.get("message")
    if not isinstance(message, dict):
        text = choice.get("text")  # some servers answer chat requests in the completions shape
        if not isinstance(text, str):
            raise ValueError("The answer has no choices[0].message.")
        message = {"content": text}
    _, messages = messages_in([{**message, "role": "assistant"}], strict=False)
    parsed = messages[0] if messages else Message("assistant")
    finish = chat.settled_finish(chat.finish_from(FINISH, choice.get("finish_reason")), parsed)
    return Completion(
        parsed, finish, usage_in(data), as_text(data.get("id")), as_text(data.get("model"))
    )


class StreamReader:
    """An OpenAI-shaped stream's chunks as events (its first choice). State lives here,
    one reader per stream."""

    def __init__(self):
        self.blocks = 0
        self.open: dict[str, int] = {}  # "text", "reasoning", "tool:<index>" -> block
        self.finished = False

    def _block(self, key: str, kind: str, out: list, call_id: str = "", name: str = "") -> int:
        if key not in self.open:
            self.open[key] = self.blocks
            self.blocks += 1
            out.append(BlockStarted(self.open[key], kind, call_id, name))
        return self.open[key]

    def feed(self, data: Any) -> list:
        out: list = []
        if not isinstance(data, dict):
            return out
        if isinstance(data.get("usage"), dict):
            out.append(UsageSeen(usage_in(data)))
        if isinstance(data.get("error"), dict | str):
            error = data["error"]
            raise UpstreamError(str(as_dict(error).get("message") or error))
        choice = as_dict((as_list(data.get("choices")) or [None])[0])
        delta = as_dict(choice.get("delta"))
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out.append(
                BlockDelta(self._block("reasoning", "reasoning", out), "reasoning", reasoning)
            )
        content = delta.get("content")
        if isinstance(content, list):
            content = "".join(as_text(as_dict(p).get("text")) for p in content)
        if isinstance(content, str) and content:
            out.append(BlockDelta(self._block("text", "text", out), "text", content))
        for position, call in enumerate(as_list(delta.get("tool_calls"))):
            call = as_dict(call)
            index = call.get("index", position)
            function = as_dict(call.get("function"))
            block = self._block(
                f"tool:{index}",
                "tool_call",
                out,
                as_text(call.get("id")) or f"call_{index}",
                as_text(function.get("name")),
            )
            if as_text(function.get("arguments")):
                out.append(BlockDelta(block, "tool_call", function["arguments"]))
        finish = chat.finish_from(FINISH, choice.get("finish_reason"))
        if finish is not None and not self.finished:
            self.finished = True
            out += [BlockEnded(b) for b in sorted(self.open.values())]
            self.open.clear()
            out.append(Finished(finish))
        return out

    def end(self) -> list:
        """The stream ended: close what is open (no Finished: the caller names a cut)."""
        out = [BlockEnded(b) for b in sorted(self.open.values())]
        self.open.clear()
        return out


# --- door side (/v1/chat/completions) ---------------------------------------------------------


@dataclass
class ChatRequest:
    model: str
    prompt: Prompt
    stream: bool
    include_usage: bool
    body: dict  # as sent: forwarded to an OpenAI-shaped upstream, stored for keys that keep prompts
    unknown: list[str] = field(default_factory=list)  # keys this door does not model


NUMBERS = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
}
KNOWN = {
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
    "temperature", "top_p", "top_k", "stop", "seed", "tools", "tool_choice", "response_format",
    *ONLY_OPENAI,
}  # fmt: skip


def read_request(body: Any) -> ChatRequest:
    """Read a caller's chat-completions body into the neutral prompt, strictly."""

    model = requested_model(body)
    system, messages = messages_in(body.get("messages"))
    params: dict[str, Any] = {}
    for name in ("temperature", "top_p"):
        if (value := number_field(body, name, *NUMBERS[name])) is not None:
            params[name] = value
    for name in ("max_completion_tokens", "max_tokens"):
        if (value := integer_field(body, name, 1)) is not None:
            params.setdefault("max_tokens", value)
    if (value := integer_field(body, "top_k", 1)) is not None:
        params["top_k"] = value
    if (value := integer_field(body, "seed", -(2**63), 2**63 - 1)) is not None:
        params["seed"] = value
    stop = body.get("stop")
    if stop is not None:
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop):
            raise WireError("`stop` must be a string or up to 4 strings.", "stop")
        params["stop"] = stop
    only = _only_openai(body)
    tools = tools_in(body.get("tools"))
    choice = tool_choice_in(body.get("tool_choice"), body.get("parallel_tool_calls"), tools)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise WireError("`stream` must be true or false.", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise WireError("`stream_options` must be an object.", "stream_options")
    prompt = Prompt(
        system, messages, params, tools, choice, output_in(body.get("response_format")),
        {FORMAT: only} if only else {},
    )  # fmt: skip
    unknown = sorted(set(body) - KNOWN)
    return ChatRequest(model, prompt, stream, bool(options.get("include_usage")), body, unknown)


def _only_openai(body: dict) -> dict:
    only = {
        k: body[k] for k in ONLY_OPENAI if body.get(k) is not None and k != "parallel_tool_calls"
    }
    for name in ("presence_penalty", "frequency_penalty"):
        number_field(body, name, *NUMBERS[name])
    integer_field(body, "n", 1, 128)
    integer_field(body, "top_logprobs", 0, 20)
    for name, kind in (
        ("logprobs", bool),
        ("store", bool),
        ("user", str),
        ("logit_bias", dict),
        ("metadata", dict),
    ):
        if name in only and not isinstance(only[name], kind):
            raise WireError(f"`{name}` has the wrong type.", name)
    if only.get("n") == 1:
        del only["n"]
    return only


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def _finish_out(finish: chat.Finish | None) -> str | None:
    if finish is None:
        return None
    return FINISH_OUT.get(finish.reason) or finish.raw or "stop"


def reasoning_fields(message: Message) -> dict:
    """Thinking as LiteLLM returns it: its text, and the signed blocks to send back."""
    reasoning = [p for p in message.parts if isinstance(p, Reasoning)]
    if not reasoning:
        return {}
    out: dict[str, Any] = {"reasoning_content": "".join(r.text for r in reasoning)}
    signed = [r for r in reasoning if r.signature or r.redacted]
    if signed:
        out["thinking_blocks"] = [
            {"type": "redacted_thinking", "data": r.redacted}
            if r.redacted
            else {"type": "thinking", "thinking": r.text, "signature": r.signature}
            for r in signed
        ]
    return out


def write_reply(completion: Completion, model: str, estimated: bool = False) -> dict:
    message = message_out(completion.message)[0] | reasoning_fields(completion.message)
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish_out(completion.finish),
            }
        ],
        "usage": usage_out(completion.usage, estimated),
    }


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


def sse(data: Any) -> bytes:
    return f"data: {json.dumps(data) if not isinstance(data, str) else data}\n\n".encode()


class StreamWriter:
    """Events as OpenAI chunks. Tool calls get the dense index OpenAI clients expect
    (0, 1, … over tool calls only); the first delta of a call carries its id, type and
    name with empty arguments, later ones the index and argument fragments only."""

    def __init__(self, model: str, include_usage: bool):
        self.id, self.model, self.include_usage = completion_id(), model, include_usage
        self.created = int(time.time())
        self.kinds: dict[int, str] = {}
        self.tool_index: dict[int, int] = {}
        self.started = False
        envelope = json.dumps(self._chunk({"content": ""}))
        self.head, _, self.tail = envelope.partition('""')  # a text chunk's envelope, once

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        return {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }  # fmt: skip

    def _opening(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        return sse(self._chunk({"role": "assistant", "content": ""}))

    def event(self, event) -> bytes:
        if isinstance(event, BlockStarted):
            self.kinds[event.index] = event.kind
            if event.kind != "tool_call":
                return b""
            index = self.tool_index[event.index] = len(self.tool_index)
            call = {"index": index, "id": event.call_id, "type": "function",
                    "function": {"name": event.name, "arguments": ""}}  # fmt: skip
            return self._opening() + sse(self._chunk({"tool_calls": [call]}))
        if isinstance(event, BlockDelta) and (event.text or event.signature):
            kind = self.kinds.get(event.index, event.kind)
            if kind == "text":
                return (
                    self._opening()
                    + f"data: {self.head}{json.dumps(event.text)}{self.tail}\n\n".encode()
                )
            if kind == "tool_call":
                call = {
                    "index": self.tool_index.get(event.index, 0),
                    "function": {"arguments": event.text},
                }
                return self._opening() + sse(self._chunk({"tool_calls": [call]}))
            delta: dict[str, Any] = {"reasoning_content": event.text} if event.text else {}
            if event.signature:
                delta["thinking_blocks"] = [
                    {"type": "thinking", "thinking": "", "signature": event.signature}
                ]
            return self._opening() + sse(self._chunk(delta))
        return b""

    def end(
        self, finish: chat.Finish | None, usage: chat.Usage, estimated: bool, error: str = ""
    ) -> bytes:
        """The closing chunks: the finish (null when the upstream never gave one), an
        error event when the stream broke (naming a cut as one), the usage when asked,
        and [DONE]."""
        out = self._opening()
        out += sse(self._chunk({}, _finish_out(finish)))
        if error:
            code = "stream_truncated" if finish is None else "upstream_error"
            out += sse(error_body(error, "upstream_error", code))
        if self.include_usage:
            chunk = self._chunk({}) | {"choices": [], "usage": usage_out(usage, estimated)}
            out += sse(chunk)
        return out + b"data: [DONE]\n\n"


def chunk_text(chunk: Any) -> str:
    """The text a chunk adds to its first choice (for what a cut-off stream had said)."""
    choice = as_dict((as_list(as_dict(chunk).get("choices")) or [None])[0])
    text = as_dict(choice.get("delta")).get("content")
    return text if isinstance(text, str) else ""


class ChunkTap:
    """A forwarded stream's chunks on their way to the caller: every text field (content,
    refusal, reasoning, tool arguments) through a stream scrubber of its own per choice,
    flushed at that choice's finish; ids and the rest scrubbed whole; the model named as
    the caller named it. The first choice is read on the side, for metering."""

    STREAMED = ("content", "refusal", "reasoning_content", "reasoning")

    def __init__(self, scrubber, model: str):
        self.scrubber, self.model = scrubber, model
        self.id, self.created = completion_id(), int(time.time())
        self.reader = StreamReader()
        self.accumulator = chat.Accumulator()
        self.live: dict[tuple, Any] = {}

    def _scrub(self, key: tuple, text: str) -> str:
        live = self.live.get(key)
        if live is None:
            live = self.live[key] = self.scrubber.stream()
        return live.feed(text)

    def _flush(self, choice_index: int, delta: dict) -> None:
        for key in [k for k in self.live if k[0] == choice_index]:
            tail = self.live.pop(key).flush()
            if not tail:
                continue
            if key[1] == "tool":
                calls = delta.setdefault("tool_calls", [])
                calls.append({"index": key[2], "function": {"arguments": tail}})
            else:
                delta[key[1]] = delta.get(key[1], "") + tail

    def feed(self, chunk: Any) -> dict | None:
        for event in self.reader.feed(chunk):
            self.accumulator.feed(event)
        if not isinstance(chunk, dict):
            return None
        out = {k: self.scrubber.json(v) for k, v in chunk.items() if k != "choices"}
        out["model"] = self.model
        # What a sloppy server leaves out, OpenAI's clients need.
        out.setdefault("id", self.id)
        out.setdefault("object", "chat.completion.chunk")
        out.setdefault("created", self.created)
        choices = []
        for choice in as_list(chunk.get("choices")):
            choice = dict(as_dict(choice))
            index = choice.get("index", 0)
            delta = dict(as_dict(choice.get("delta")))
            for name in self.STREAMED:
                if isinstance(delta.get(name), str):
                    delta[name] = self._scrub((index, name), delta[name])
            calls = []
            for position, call in enumerate(as_list(delta.get("tool_calls"))):
                call = self.scrubber.json(as_dict(call))
                function = as_dict(call.get("function"))
                arguments = as_dict(as_dict(delta["tool_calls"][position]).get("function")).get(
                    "arguments"
                )
                if isinstance(arguments, str):
                    key = (index, "tool", call.get("index", position))
                    call["function"] = function | {"arguments": self._scrub(key, arguments)}
                calls.append(call)
            if calls:
                delta["tool_calls"] = calls
            if choice.get("finish_reason"):
                self._flush(index, delta)
            rest = {
                k: self.scrubber.json(v) for k, v in choice.items() if k not in ("delta", "index")
            }
            choices.append(rest | {"index": index, "delta": delta})
        out["choices"] = choices
        return out

    def end(self) -> dict | None:
        """What scrubbers still hold when a stream ends without a finish, as a chunk."""
        for event in self.reader.end():
            self.accumulator.feed(event)
        choices = []
        for index in sorted({k[0] for k in self.live}):
            delta: dict = {}
            self._flush(index, delta)
            if delta:
                choices.append({"index": index, "delta": delta, "finish_reason": None})
        return (
            {"object": "chat.completion.chunk", "model": self.model, "choices": choices}
            if choices
            else None
        )
