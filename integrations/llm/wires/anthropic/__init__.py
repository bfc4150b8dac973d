"""Anthropic Messages, both directions (the door side is `/v1/messages`).

Upstream side: `write_request` translates the neutral prompt (tool results merged into one
user turn, tool_result blocks first; thinking blocks sent back with their signatures;
structured output through a forced tool), `read_reply` and `StreamReader` read answers
leniently. The finish-reason table is one table, read both ways.
"""

from __future__ import annotations

import json
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
    Opaque,
    Prompt,
    Reasoning,
    Text,
    Tool,
    ToolCall,
    ToolResult,
    UsageSeen,
)
from integrations.llm.wires.common import (
    Unsupported,
    UpstreamError,
    arguments_object,
    as_dict,
    as_text,
    count,
    extra,
    make_usage,
    merged_params,
    stop_list,
)

FORMAT = "anthropic"
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "other",
}
FINISH_OUT = chat.reverse(FINISH)
DEFAULT_MAX_TOKENS = 1024  # the Messages API requires max_tokens
OUTPUT_TOOL = "structured_output"  # the forced tool that carries a JSON answer
THINKING_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}
# OpenAI-only parameters: what Anthropic takes as a no-op, and what it cannot express.
NO_OPS = (
    "seed",
    "store",
    "service_tier",
    "metadata",
    "prediction",
    "prompt_cache_key",
    "safety_identifier",
    "verbosity",
)
CANNOT = (
    "n",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "presence_penalty",
    "frequency_penalty",
    "modalities",
    "audio",
    "web_search_options",
)


def _media_out(media: Media) -> dict:
    kind = "document" if media.kind == "file" else "image"
    if media.kind == "audio":
        raise Unsupported("messages", "Anthropic models take no audio input.")
    if media.url and not media.data:
        return {"type": kind, "source": {"type": "url", "url": media.url}}
    default = "application/pdf" if kind == "document" else "image/png"
    return {
        "type": kind,
        "source": {"type": "base64", "media_type": media.media_type or default, "data": media.data},
    }


def _block_out(part) -> dict | None:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text} if part.text else None
    if isinstance(part, Media):
        return _media_out(part)
    if isinstance(part, ToolCall):
        return {
            "type": "tool_use",
            "id": part.id,
            "name": part.name,
            "input": arguments_object(part.arguments),
        }
    if isinstance(part, ToolResult):
        content: Any = part.content
        if part.media:
            content = ([{"type": "text", "text": part.content}] if part.content else []) + [
                _media_out(m) for m in part.media
            ]
        block = {"type": "tool_result", "tool_use_id": part.call_id, "content": content}
        return block | ({"is_error": True} if part.is_error else {})
    if isinstance(part, Reasoning) and part.format == FORMAT:  # a signature means nothing elsewhere
        if part.redacted:
            return {"type": "redacted_thinking", "data": part.redacted}
        return {"type": "thinking", "thinking": part.text, "signature": part.signature}
    if isinstance(part, Opaque) and part.format == FORMAT:
        return part.raw
    return None


def messages_out(messages: tuple[Message, ...]) -> list[dict]:
    """Anthropic turns: roles alternate, tool results ride in the user turn (first), and
    thinking leads the assistant turn it belongs to."""
    turns: list[dict] = []
    for message in messages:
        role = "assistant" if message.role == "assistant" else "user"
        parts = sorted(
            message.parts, key=lambda p: 0 if isinstance(p, ToolResult | Reasoning) else 1
        )
        blocks = [b for b in (_block_out(p) for p in parts) if b is not None]
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            previous = turns[-1]["content"]
            results = [b for b in previous + blocks if b.get("type") == "tool_result"]
            others = [b for b in previous + blocks if b.get("type") != "tool_result"]
            turns[-1]["content"] = results + others
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:  # one text block reads as plain text, as most clients send it
        if len(turn["content"]) == 1 and turn["content"][0].get("type") == "text":
            turn["content"] = turn["content"][0]["text"]
    return turns


def tool_out(tool: Tool) -> dict:
    out: dict[str, Any] = {
        "name": tool.name,
        "input_schema": tool.parameters or {"type": "object", "properties": {}},
    }
    if tool.description:
        out["description"] = tool.description
    return out


def _check(prompt: Prompt, openai: dict) -> None:
    for name in CANNOT:
        if openai.get(name) not in (None, False, 0, 0.0, 1 if name == "n" else None):
            raise Unsupported(
                name,
                f"`{name}` is not supported for this model: Anthropic's Messages API cannot express it.",
            )
    temperature = prompt.params.get("temperature")
    if temperature is not None and temperature > 1:
        raise Unsupported("temperature", "Anthropic models take a temperature from 0 to 1.")
    if prompt.output is not None and prompt.output.kind != "text" and prompt.tools:
        raise Unsupported(
            "response_format",
            "A JSON response_format together with tools is not supported for Anthropic models.",
        )


def write_request(config, prompt: Prompt) -> dict:
    openai = extra(prompt, "openai")
    _check(prompt, openai)
    params = merged_params(config, prompt)
    body: dict[str, Any] = {
        "model": config.model_id,
        "max_tokens": params.pop("max_tokens", DEFAULT_MAX_TOKENS),
    }
    if prompt.system:
        body["system"] = prompt.system
    body["messages"] = messages_out(prompt.messages)
    for name in ("temperature", "top_p", "top_k"):
        if name in params:
            body[name] = params[name]
    if "stop" in params:
        body["stop_sequences"] = stop_list(params["stop"])
    tools = [tool_out(t) for t in prompt.tools]
    if not tools and (prompt.has(ToolCall) or prompt.has(ToolResult)):
        # Anthropic refuses tool blocks in a history without a tool list: describe them.
        names = dict.fromkeys(p.name for m in prompt.messages for p in m.tool_calls)
        tools = [tool_out(Tool(name)) for name in names]
    choice = prompt.tool_choice
    if prompt.output is not None and prompt.output.kind in ("json_object", "json_schema"):
        schema = prompt.output.schema or {"type": "object"}
        tools = [{"name": OUTPUT_TOOL, "description": "Answer with this.", "input_schema": schema}]
        body["tool_choice"] = {"type": "tool", "name": OUTPUT_TOOL}
    elif choice is not None and (tools or choice.mode == "none"):
        kind = {"auto": "auto", "required": "any", "none": "none", "tool": "tool"}[choice.mode]
        body["tool_choice"] = {"type": kind} | ({"name": choice.name} if kind == "tool" else {})
        if choice.parallel is False and kind != "none":
            body["tool_choice"]["disable_parallel_tool_use"] = True
    if tools:
        body["tools"] = tools
    if isinstance(openai.get("user"), str):
        body["metadata"] = {"user_id": openai["user"][:256]}
    _thinking(body, openai.get("reasoning_effort"))
    body.update(extra(prompt, FORMAT))
    return body


def _thinking(body: dict, effort: Any) -> None:
    """OpenAI's reasoning_effort as Anthropic's thinking budget."""
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        return
    if as_dict(body.get("tool_choice")).get("type") in ("any", "tool"):
        raise Unsupported(
            "tool_choice",
            "Anthropic models cannot be forced to call a tool while they think (reasoning_effort).",
        )
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    body["max_tokens"] = max(body["max_tokens"], budget + 1024)
    body.pop("temperature", None)  # thinking takes no temperature or top_k
    body.pop("top_k", None)


def usage_in(usage: Any) -> chat.Usage:
    usage = as_dict(usage)
    read, wrote = (
        count(usage.get("cache_read_input_tokens")),
        count(usage.get("cache_creation_input_tokens")),
    )
    prompt = count(usage.get("input_tokens"))
    if prompt is not None:  # OpenAI's meaning: all input, cached or not
        prompt += (read or 0) + (wrote or 0)
    return make_usage(
        prompt, usage.get("output_tokens"), cache_read_tokens=read, cache_write_tokens=wrote
    )


def _part_in(block: Any, structured: bool):
    block = as_dict(block)
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return Text(block["text"])
    if kind == "tool_use":
        arguments = json.dumps(block.get("input") if isinstance(block.get("input"), dict) else {})
        if structured and block.get("name") == OUTPUT_TOOL:
            return Text(arguments)
        return ToolCall(as_text(block.get("id")), as_text(block.get("name")), arguments)
    if kind == "thinking":
        return Reasoning(
            as_text(block.get("thinking")), as_text(block.get("signature")), format=FORMAT
        )
    if kind == "redacted_thinking":
        return Reasoning(redacted=as_text(block.get("data")), format=FORMAT)
    return Opaque(FORMAT, block) if kind else None


def _structured(prompt: Prompt | None) -> bool:
    return prompt is not None and prompt.output is not None and prompt.output.kind != "text"


def read_reply(data: Any, config=None, prompt: Prompt | None = None) -> Completion:
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise ValueError("The answer's content is not a list of blocks.")
    structured = _structured(prompt)
    parts = tuple(p for p in (_part_in(b, structured) for b in data["content"]) if p is not None)
    message = Message("assistant", parts)
    finish = chat.finish_from(FINISH, data.get("stop_reason"))
    if (
        structured
        and finish is not None
        and finish.reason == "tool_calls"
        and not message.tool_calls
    ):
        finish = chat.Finish("stop", finish.raw)
    return Completion(
        message,
        chat.settled_finish(finish, message),
        usage_in(data.get("usage")),
        as_text(data.get("id")),
        as_text(data.get("model")),
    )


class StreamReader:
    """Anthropic's events (message_start, content_block_*, message_delta) as neutral ones."""

    def __init__(self, prompt: Prompt | None = None):
        self.structured = _structured(prompt)
        self.kinds: dict[int, str] = {}
        self.usage = chat.Usage()
        self.stop: Any = None

    def feed(self, data: Any) -> list:
        data = as_dict(data)
        kind, index = data.get("type"), data.get("index")
        if kind == "message_start":
            self.usage = self.usage.merged(usage_in(as_dict(data.get("message")).get("usage")))
            return [UsageSeen(self.usage)]
        if kind == "content_block_start" and isinstance(index, int):
            block = as_dict(data.get("content_block"))
            what = {
                "text": "text",
                "tool_use": "tool_call",
                "thinking": "reasoning",
                "redacted_thinking": "reasoning",
            }.get(block.get("type"))
            if what == "tool_call" and self.structured and block.get("name") == OUTPUT_TOOL:
                what = "text"
            if what is None:
                return []
            self.kinds[index] = what
            out: list = [
                BlockStarted(index, what, as_text(block.get("id")), as_text(block.get("name")))
            ]
            if block.get("type") == "text" and as_text(block.get("text")):
                out.append(BlockDelta(index, "text", block["text"]))
            return out
        if kind == "content_block_delta" and isinstance(index, int):
            delta = as_dict(data.get("delta"))
            if index not in self.kinds:  # a delta with no start: infer the block
                what = {"input_json_delta": "tool_call", "thinking_delta": "reasoning"}.get(
                    delta.get("type"), "text"
                )
                self.kinds[index] = what
                return [BlockStarted(index, what), *self.feed(data)]
            piece = delta.get("text") or delta.get("partial_json") or delta.get("thinking") or ""
            signature = as_text(delta.get("signature"))
            if isinstance(piece, str) and (piece or signature):
                return [BlockDelta(index, self.kinds[index], piece, signature)]
            return []
        if kind == "content_block_stop" and index in self.kinds:
            return [BlockEnded(index)]
        if kind == "message_delta":
            # Cumulative: proxies such as LiteLLM put the input tokens here, not in message_start.
            later = usage_in(data.get("usage"))
            if not later.prompt_tokens:
                later.prompt_tokens = None
            self.usage = self.usage.merged(later)
            self.stop = as_dict(data.get("delta")).get("stop_reason") or self.stop
            return [UsageSeen(self.usage)]
        if kind == "message_stop":
            finish = chat.finish_from(FINISH, self.stop) or chat.Finish("stop", "")
            if self.structured and finish.reason == "tool_calls":
                finish = chat.Finish("stop", finish.raw)
            return [Finished(finish)]
        if kind == "error":
            raise UpstreamError(
                as_text(as_dict(data.get("error")).get("message")) or "stream error"
            )
        return []

    def end(self) -> list:
        return []
