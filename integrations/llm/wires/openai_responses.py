"""OpenAI's Responses API, door side: what the gateway's /v1/responses reads and answers.

A request's items, tools, tool choice and text format are reshaped into their chat
completions equivalents and read by that format's codec (wires/openai_chat.py), so one
codec decides what a message, a tool or a schema is. The answer is written from neutral
events by one writer, whole or as the typed event stream (response.created, …,
response.completed), so a stored or fetched response is exactly what was streamed.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from integrations.llm import chat
from integrations.llm.answers import events_of
from integrations.llm.chat import BlockDelta, BlockEnded, BlockStarted, Message, Prompt
from integrations.llm.wires import openai_chat
from integrations.llm.wires.common import (
    WireError,
    as_dict,
    as_text,
    integer_field,
)

BUILT_IN_TOOLS = (
    "web_search", "web_search_preview", "file_search", "computer_use_preview", "computer_use",
    "code_interpreter", "image_generation", "mcp", "local_shell", "shell", "apply_patch",
)  # fmt: skip
KNOWN = {
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text",
    "max_output_tokens", "temperature", "top_p", "stream", "store", "previous_response_id",
    "metadata", "user", "reasoning", "include", "truncation", "service_tier",
    "safety_identifier", "prompt_cache_key", "stream_options", "background",
}  # fmt: skip


@dataclass
class ResponsesRequest:
    model: str
    prompt: Prompt
    stream: bool
    body: dict
    items: list  # the input as items, for the stored conversation
    store: bool = True
    previous_response_id: str = ""
    id: str = field(default_factory=lambda: "resp_" + uuid.uuid4().hex)
    history: list = field(default_factory=list)  # the stored conversation it continues
    unknown: list[str] = field(default_factory=list)
    include_usage: bool = True


# --- reading ---------------------------------------------------------------------------------


def _part(part: Any, where: str) -> dict:
    """A Responses content part in chat completions' shape."""
    part = as_dict(part)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": part.get("text")}
    if kind == "refusal":
        return {"type": "refusal", "refusal": part.get("refusal")}
    if kind == "input_image":
        if not part.get("image_url"):
            raise WireError(
                "An input_image needs an image_url (file ids are not kept here).", where
            )
        image = {"url": part["image_url"]} | (
            {"detail": part["detail"]} if part.get("detail") else {}
        )
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        if not part.get("file_data"):
            raise WireError("An input_file needs file_data (file ids are not kept here).", where)
        return {"type": "file", "file": {"file_data": part["file_data"]}}
    raise WireError(f"Content parts of type {str(kind)[:30]!r} are not supported.", where)


def _content(content: Any, where: str) -> Any:
    if isinstance(content, str) or content is None:
        return content
    if not isinstance(content, list):
        raise WireError("`content` must be text or a list of parts.", where)
    return [_part(p, f"{where}[{i}]") for i, p in enumerate(content)]


def chat_messages(items: list) -> list[dict]:
    """Responses input items as chat completions messages: consecutive assistant items
    (a message, function calls, reasoning) make one assistant message."""
    out: list[dict] = []

    def assistant() -> dict:
        if not out or out[-1]["role"] != "assistant":
            out.append({"role": "assistant", "content": None})
        return out[-1]

    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise WireError("Each input item must be an object.", where)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            content = _content(item.get("content"), f"{where}.content")
            if role == "assistant":
                message = assistant()
                texts = [content] if isinstance(content, str) else content or []
                for part in texts:
                    if isinstance(part, str) or part.get("type") == "text":
                        text = part if isinstance(part, str) else as_text(part.get("text"))
                        message["content"] = (message["content"] or "") + text
                    elif part.get("type") == "refusal":
                        message["refusal"] = as_text(part.get("refusal"))
            else:
                out.append({"role": role, "content": content})
        elif kind == "function_call":
            calls = assistant().setdefault("tool_calls", [])
            calls.append({"id": item.get("call_id"), "type": "function", "function": {
                "name": item.get("name"), "arguments": item.get("arguments")}})  # fmt: skip
        elif kind == "function_call_output":
            output = item.get("output")
            if isinstance(output, list):
                output = "".join(as_text(as_dict(p).get("text")) for p in output)
            out.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": output})
        elif kind == "reasoning":
            summary = "".join(as_text(as_dict(s).get("text")) for s in item.get("summary") or [])
            if summary:
                assistant()["reasoning_content"] = summary
        else:
            raise WireError(
                f"Input items of type {str(kind)[:30]!r} are not supported: send messages, "
                "function_call and function_call_output items, or previous_response_id.",
                f"{where}.type",
                "unsupported_parameter",
            )
    return out


def items_of(raw: Any) -> list:
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise WireError("`input` must be text or a non-empty list of items.", "input")
    return raw


def prompt_of(ask: ResponsesRequest, items: list) -> Prompt:
    """The request's prompt over a longer conversation (a stored one, then the input);
    instructions are the request's own, never carried over."""
    system, messages = openai_chat.messages_in(chat_messages(items))
    instructions = as_text(ask.body.get("instructions"))
    return replace(
        ask.prompt, system="\n\n".join(t for t in (instructions, system) if t), messages=messages
    )


def _tools(raw: Any) -> list[dict] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise WireError("`tools` must be a list.", "tools")
    out = []
    for i, tool in enumerate(raw):
        kind = as_dict(tool).get("type")
        if kind in BUILT_IN_TOOLS or kind != "function":
            raise WireError(
                f"The built-in tool {str(kind)[:30]!r} is not supported: the console's models "
                "call function tools, which your code runs.",
                f"tools[{i}].type",
                "unsupported_parameter",
            )
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool
        }
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(raw: Any) -> Any:
    if isinstance(raw, dict):
        if raw.get("type") != "function":
            raise WireError("`tool_choice` names a function tool only.", "tool_choice")
        return {"type": "function", "function": {"name": raw.get("name")}}
    return raw


def _format(raw: Any) -> dict | None:
    spec = as_dict(as_dict(raw).get("format"))
    if not spec:
        return None
    if spec.get("type") != "json_schema":
        return {"type": spec.get("type")}
    inner = {k: spec[k] for k in ("name", "schema", "strict") if k in spec}
    return {"type": "json_schema", "json_schema": inner}


def read_request(body: Any) -> ResponsesRequest:
    """Read a caller's Responses body into the neutral prompt, strictly."""
    if not isinstance(body, dict):
        raise WireError("The body must be a JSON object.")
    items = items_of(body.get("input"))
    instructions = body.get("instructions") or ""
    if not isinstance(instructions, str):
        raise WireError("`instructions` must be text.", "instructions")
    if body.get("background"):
        raise WireError(
            "Background responses are not supported.", "background", "unsupported_parameter"
        )
    chat_body = {
        "model": body.get("model"),
        "messages": chat_messages(items),
        "tools": _tools(body.get("tools")),
        "tool_choice": _tool_choice(body.get("tool_choice")),
        "parallel_tool_calls": body.get("parallel_tool_calls"),
        "response_format": _format(body.get("text")),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "max_tokens": integer_field(body, "max_output_tokens", 1),
        "user": body.get("user"),
        "reasoning_effort": as_dict(body.get("reasoning")).get("effort"),
        "stream": body.get("stream", False),
    }
    try:
        read = openai_chat.read_request({k: v for k, v in chat_body.items() if v is not None})
    except WireError as exc:
        param = {"messages": "input", "response_format": "text.format", "max_tokens":
                 "max_output_tokens"}.get(exc.param or "", exc.param)  # fmt: skip
        raise WireError(exc.message.replace("`messages`", "`input`"), param, exc.code) from exc
    prompt = replace(
        read.prompt, system="\n\n".join(t for t in (instructions, read.prompt.system) if t)
    )
    previous = body.get("previous_response_id") or ""
    if not isinstance(previous, str):
        raise WireError("`previous_response_id` must be text.", "previous_response_id")
    store = body.get("store", True)
    return ResponsesRequest(
        read.model, prompt, read.stream, body, items, store is not False, previous,
        unknown=sorted(set(body) - KNOWN),
    )  # fmt: skip


# --- writing ---------------------------------------------------------------------------------


def usage_out(usage: chat.Usage) -> dict:
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": usage.cache_read_tokens or 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": prompt + completion,
    }


def _echo_tools(body: dict) -> list:
    return [t for t in body.get("tools") or [] if isinstance(t, dict)]


class Writer:
    """Neutral events as a response: its output items built block by block, and, when
    streaming, the typed events that build it (each with its sequence number). `final`
    is the response as it ended, the one that is stored and fetched."""

    def __init__(self, ask: ResponsesRequest, model: str, streaming: bool = True):
        body = ask.body
        self.streaming = streaming
        self.sequence = 0
        self.items: dict[int, tuple[int, dict]] = {}  # neutral index -> (output index, item)
        self.open: int | None = None
        self.started = False
        self.final: dict | None = None
        text = {"format": as_dict(body.get("text")).get("format") or {"type": "text"}}
        self.response = {
            "id": ask.id, "object": "response", "created_at": int(time.time()),
            "status": "in_progress", "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "model": model, "output": [], "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": ask.previous_response_id or None, "store": ask.store,
            "temperature": body.get("temperature"), "text": text,
            "tool_choice": body.get("tool_choice", "auto"), "tools": _echo_tools(body),
            "top_p": body.get("top_p"), "truncation": "disabled", "usage": None,
            "metadata": as_dict(body.get("metadata")), "user": body.get("user"),
        }  # fmt: skip

    def _emit(self, kind: str, **data) -> bytes:
        if not self.streaming:
            return b""
        data = {"type": kind, "sequence_number": self.sequence, **data}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()

    def opening(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        snapshot = dict(self.response, output=[])
        return self._emit("response.created", response=snapshot) + self._emit(
            "response.in_progress", response=snapshot
        )

    def _start(self, index: int, kind: str, call_id: str = "", name: str = "") -> bytes:
        out = self.opening() + self._close()
        position = len(self.response["output"])
        if kind == "tool_call":
            item = {"id": "fc_" + uuid.uuid4().hex, "type": "function_call", "status": "in_progress",
                    "call_id": call_id, "name": name, "arguments": ""}  # fmt: skip
        elif kind == "reasoning":
            item = {"id": "rs_" + uuid.uuid4().hex, "type": "reasoning", "summary": []}
        else:
            item = {"id": "msg_" + uuid.uuid4().hex, "type": "message", "status": "in_progress",
                    "role": "assistant", "content": []}  # fmt: skip
        self.items[index], self.open = (position, item), index
        self.response["output"].append(item)
        out += self._emit("response.output_item.added", output_index=position, item=_copy(item))
        ids = {"item_id": item["id"], "output_index": position}
        if item["type"] == "message":
            item["content"].append({"type": "output_text", "text": "", "annotations": []})
            out += self._emit("response.content_part.added", **ids, content_index=0,
                              part=_copy(item["content"][0]))  # fmt: skip
        elif item["type"] == "reasoning":
            item["summary"].append({"type": "summary_text", "text": ""})
            out += self._emit("response.reasoning_summary_part.added", **ids, summary_index=0,
                              part=_copy(item["summary"][0]))  # fmt: skip
        return out

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        position, item = self.items[self.open]
        self.open = None
        ids = {"item_id": item["id"], "output_index": position}
        out = b""
        if item["type"] == "message":
            part = item["content"][0]
            out += self._emit(
                "response.output_text.done", **ids, content_index=0, text=part["text"], logprobs=[]
            )
            out += self._emit(
                "response.content_part.done", **ids, content_index=0, part=_copy(part)
            )
        elif item["type"] == "function_call":
            out += self._emit(
                "response.function_call_arguments.done", **ids, arguments=item["arguments"]
            )
        else:
            part = item["summary"][0]
            out += self._emit(
                "response.reasoning_summary_text.done", **ids, summary_index=0, text=part["text"]
            )
            out += self._emit(
                "response.reasoning_summary_part.done", **ids, summary_index=0, part=_copy(part)
            )
        if "status" in item:
            item["status"] = "completed"
        return out + self._emit(
            "response.output_item.done", output_index=position, item=_copy(item)
        )

    def event(self, event) -> bytes:
        if isinstance(event, BlockStarted):
            return self._start(event.index, event.kind, event.call_id, event.name)
        if isinstance(event, BlockDelta) and event.text:
            out = b"" if event.index in self.items else self._start(event.index, event.kind)
            position, item = self.items[event.index]
            ids = {"item_id": item["id"], "output_index": position}
            if item["type"] == "message":
                item["content"][0]["text"] += event.text
                return out + self._emit("response.output_text.delta", **ids, content_index=0,
                                        delta=event.text, logprobs=[])  # fmt: skip
            if item["type"] == "function_call":
                item["arguments"] += event.text
                return out + self._emit(
                    "response.function_call_arguments.delta", **ids, delta=event.text
                )
            item["summary"][0]["text"] += event.text
            return out + self._emit(
                "response.reasoning_summary_text.delta", **ids, summary_index=0, delta=event.text
            )
        if isinstance(event, BlockEnded) and event.index == self.open:
            return self._close()
        return b""

    def end(self, finish: chat.Finish | None, usage: chat.Usage, error: str = "") -> bytes:
        out = self.opening() + self._close()
        response = self.response
        response["usage"] = usage_out(usage)
        if error:
            response["status"] = "failed"
            response["error"] = {"code": "server_error", "message": error}
            kind = "response.failed"
        elif finish is not None and finish.reason in ("length", "content_filter"):
            response["status"] = "incomplete"
            reason = "max_output_tokens" if finish.reason == "length" else "content_filter"
            response["incomplete_details"] = {"reason": reason}
            kind = "response.incomplete"
        else:
            response["status"], kind = "completed", "response.completed"
        response["completed_at"] = int(time.time())
        self.final = response
        return out + self._emit(kind, response=response)


def _copy(value: dict) -> dict:
    return json.loads(json.dumps(value))


def write_reply(ask: ResponsesRequest, model: str, message: Message, finish, usage) -> dict:
    """A whole answer as a response (the same writer as a stream, without the events)."""
    writer = Writer(ask, model, streaming=False)
    for event in events_of(message, None, usage):
        writer.event(event)
    writer.end(finish, usage)
    return writer.final
