"""Test upstreams that speak the OpenAI chat and Anthropic Messages APIs faithfully: tool
calls and their results, parallel calls, streamed tool-call deltas in each API's own
shape, structured output, thinking with signatures, usage, and the validation the real
services do (a tool result must answer a preceding call; Anthropic wants max_tokens,
alternating turns, a tool list whenever the history holds tool blocks, temperature up
to 1, and thinking sent back unchanged).

They behave like a small, predictable agent: given tools and a question, they call a
tool (every tool when asked to "use all tools"); given tool results, they answer with
what the tools said; asked for JSON, they answer an instance of the schema.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.upstream import send


def instance(schema: Any) -> Any:
    """A value that satisfies a (simple) JSON Schema."""
    schema = schema if isinstance(schema, dict) else {}
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: instance(sub) for name, sub in props.items()}
    return {
        "string": "Paris",
        "number": 21.5,
        "integer": 21,
        "boolean": True,
        "array": [],
        "null": None,
    }.get(kind, "Paris")


def _tokens(value: Any) -> int:
    return max(1, len(json.dumps(value)) // 4)


def signature(text: str) -> str:
    return "sig-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _bad(h, status: int, message: str, anthropic: bool = False):
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}} if anthropic else {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}  # fmt: skip
    send(h, status, json.dumps(body).encode(), "application/json")


def _sse(h, data: Any, event: str | None = None) -> None:
    prefix = f"event: {event}\n" if event else ""
    payload = json.dumps(data) if not isinstance(data, str) else data
    h.wfile.write(f"{prefix}data: {payload}\n\n".encode())
    h.wfile.flush()


def _start_stream(h) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.send_header("Connection", "close")
    h.end_headers()
    h.close_connection = True


def _pieces(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# --- OpenAI chat completions ---------------------------------------------------------------


def _openai_decide(body: dict) -> tuple[str | None, list[dict], str]:
    """(text, tool calls, finish reason) as the agent answers this conversation."""
    messages = body["messages"]
    last = messages[-1]
    output = body.get("response_format") or {}
    tools = body.get("tools") or []
    choice = body.get("tool_choice", "auto")
    if output.get("type") == "json_schema":
        return json.dumps(instance(output["json_schema"]["schema"])), [], "stop"
    if output.get("type") == "json_object":
        return json.dumps({"answer": "Paris"}), [], "stop"
    if last["role"] == "tool":
        results = []
        for m in reversed(messages):
            if m["role"] != "tool":
                break
            results.insert(
                0, m["content"] if isinstance(m["content"], str) else json.dumps(m["content"])
            )
        return "The tools said: " + "; ".join(results), [], "stop"
    if tools and choice != "none":
        text = json.dumps(last.get("content"))
        picked = tools if "all tools" in text else tools[:1]
        if isinstance(choice, dict):
            picked = [t for t in tools if t["function"]["name"] == choice["function"]["name"]]
        calls = [
            {"id": f"call_{i}{len(messages)}", "type": "function", "function": {
                "name": t["function"]["name"], "arguments": json.dumps(instance(t["function"].get("parameters")))}}
            for i, t in enumerate(picked)
        ]  # fmt: skip
        return None, calls, "tool_calls"
    content = last.get("content")
    text = (
        content if isinstance(content, str) else " ".join(p.get("text", "[image]") for p in content)
    )
    return f"Echo: {text}", [], "stop"


def _openai_validate(body: dict) -> str | None:
    pending: set[str] = set()
    for m in body.get("messages", []):
        if m.get("role") == "assistant":
            pending = {c["id"] for c in m.get("tool_calls") or []}
        elif m.get("role") == "tool":
            if m.get("tool_call_id") not in pending:
                return "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
        else:
            pending = set()
    return None


def openai_model(rec, h):
    body = rec.json()
    if rec.path.endswith("/embeddings"):
        return embeddings_model(rec, h)
    if problem := _openai_validate(body):
        return _bad(h, 400, problem)
    text, calls, finish = _openai_decide(body)
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    if text is not None and limit and len(text) > limit * 4:
        text, finish = text[: limit * 4], "length"
    usage = {
        "prompt_tokens": _tokens(body["messages"]),
        "completion_tokens": _tokens([text, calls]),
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    if not body.get("stream"):
        message = {"role": "assistant", "content": text, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        reply = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": body["model"],
                 "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                 "usage": usage}  # fmt: skip
        if body.get("logprobs"):
            reply["choices"][0]["logprobs"] = {
                "content": [{"token": "Echo", "logprob": -0.1, "top_logprobs": []}]
            }
        return send(h, 200, json.dumps(reply).encode(), "application/json")
    _start_stream(h)

    def chunk(delta: dict, finish_reason=None) -> dict:
        return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}  # fmt: skip

    _sse(h, chunk({"role": "assistant", "content": ""}))
    if text is not None:
        for piece in _pieces(text):
            _sse(h, chunk({"content": piece}))
    for index, call in enumerate(calls):
        _sse(h, chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                       "function": {"name": call["function"]["name"], "arguments": ""}}]}))  # fmt: skip
        for piece in _pieces(call["function"]["arguments"], 5):
            _sse(h, chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    _sse(h, chunk({}, finish))
    if (body.get("stream_options") or {}).get("include_usage"):
        _sse(h, {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
                 "choices": [], "usage": usage})  # fmt: skip
    _sse(h, "[DONE]")


# --- Anthropic Messages ----------------------------------------------------------------------


def _anthropic_validate(body: dict) -> str | None:
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    if body.get("temperature", 0) > 1:
        return "temperature: range: 0..1"
    messages = body.get("messages", [])
    if not messages or messages[0]["role"] != "user":
        return 'messages: first message must use the "user" role'
    uses: set[str] = set()
    has_blocks = False
    for i, m in enumerate(messages):
        if i and m["role"] == messages[i - 1]["role"]:
            return 'messages: roles must alternate between "user" and "assistant"'
        blocks = m["content"] if isinstance(m["content"], list) else []
        if m["role"] == "assistant":
            uses = {b["id"] for b in blocks if b.get("type") == "tool_use"}
            for b in blocks:
                if b.get("type") == "thinking" and b.get("signature") != signature(
                    b.get("thinking", "")
                ):
                    return "messages: Invalid `signature` in `thinking` block"
        else:
            results = [b for b in blocks if b.get("type") == "tool_result"]
            if results and blocks[: len(results)] != results:
                return "messages: tool_result blocks must come first in the user message"
            for b in results:
                if b["tool_use_id"] not in uses:
                    return f"messages: unexpected `tool_use_id` found in `tool_result` blocks: {b['tool_use_id']}"
            uses = set()
        has_blocks = has_blocks or any(b.get("type") in ("tool_use", "tool_result") for b in blocks)
    if has_blocks and not body.get("tools"):
        return "Requests which include `tool_use` or `tool_result` blocks must define tools."
    return None


def _anthropic_decide(body: dict) -> tuple[list[dict], str]:
    """The content blocks the agent answers with, and its stop reason."""
    messages, tools = body["messages"], body.get("tools") or []
    choice = body.get("tool_choice") or {"type": "auto"}
    blocks: list[dict] = []
    last = messages[-1]["content"]
    question = (
        last
        if isinstance(last, str)
        else " ".join(
            b["text"] if b["type"] == "text" else f"[{b['type']}]"
            for b in last
            if b.get("type") in ("text", "image", "document")
        )
    )
    if (body.get("thinking") or {}).get("type") == "enabled":
        thought = f"The user asks: {question[:40]}"
        blocks.append({"type": "thinking", "thinking": thought, "signature": signature(thought)})
    results = [b for b in last if b.get("type") == "tool_result"] if isinstance(last, list) else []
    if choice.get("type") == "tool":
        tool = next(t for t in tools if t["name"] == choice["name"])
        blocks.append(
            {
                "type": "tool_use",
                "id": "toolu_forced",
                "name": tool["name"],
                "input": instance(tool["input_schema"]),
            }
        )
        return blocks, "tool_use"
    if results:
        said = "; ".join(
            r["content"] if isinstance(r["content"], str) else json.dumps(r["content"])
            for r in results
        )
        blocks.append({"type": "text", "text": f"The tools said: {said}"})
        return blocks, "end_turn"
    if tools and choice.get("type") != "none":
        picked = tools if "all tools" in question else tools[:1]
        for i, t in enumerate(picked):
            blocks.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{i}{len(messages)}",
                    "name": t["name"],
                    "input": instance(t["input_schema"]),
                }
            )
        return blocks, "tool_use"
    blocks.append({"type": "text", "text": f"Echo: {question}"})
    return blocks, "end_turn"


def anthropic_model(rec, h):
    body = rec.json()
    if rec.path.endswith("/messages/count_tokens"):
        if "max_tokens" in body or not body.get("messages"):
            return _bad(h, 400, "count_tokens: messages required, max_tokens not allowed", True)
        counted = _tokens(body["messages"]) + _tokens(body.get("system", "")) + 100
        return send(h, 200, json.dumps({"input_tokens": counted}).encode(), "application/json")
    if problem := _anthropic_validate(body):
        return _bad(h, 400, problem, anthropic=True)
    blocks, stop = _anthropic_decide(body)
    for block in blocks:
        if block["type"] == "text" and len(block["text"]) > body["max_tokens"] * 4:
            block["text"], stop = block["text"][: body["max_tokens"] * 4], "max_tokens"
    usage = {"input_tokens": _tokens(body["messages"]), "output_tokens": _tokens(blocks),
             "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}  # fmt: skip
    message = {"id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"],
               "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage}  # fmt: skip
    if not body.get("stream"):
        return send(h, 200, json.dumps(message).encode(), "application/json")
    _start_stream(h)
    start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
    _sse(h, {"type": "message_start", "message": start}, "message_start")
    _sse(h, {"type": "ping"}, "ping")
    for index, block in enumerate(blocks):
        empty = {"text": {"type": "text", "text": ""}, "thinking": {"type": "thinking", "thinking": "", "signature": ""},
                 "tool_use": dict(block, input={})}[block["type"]]  # fmt: skip
        _sse(
            h,
            {"type": "content_block_start", "index": index, "content_block": empty},
            "content_block_start",
        )
        if block["type"] == "text":
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        elif block["type"] == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            deltas = [
                {"type": "input_json_delta", "partial_json": p}
                for p in _pieces(json.dumps(block["input"]), 5)
            ]
        for delta in deltas:
            _sse(
                h,
                {"type": "content_block_delta", "index": index, "delta": delta},
                "content_block_delta",
            )
        _sse(h, {"type": "content_block_stop", "index": index}, "content_block_stop")
    _sse(h, {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
             "usage": {"output_tokens": usage["output_tokens"]}}, "message_delta")  # fmt: skip
    _sse(h, {"type": "message_stop"}, "message_stop")


# --- OpenAI legacy completions ----------------------------------------------------------------


def completions_model(rec, h):
    """A completions server: echoes the prompt's last line, streamed when asked."""
    body = rec.json()
    lines = [line for line in body["prompt"].splitlines() if line.strip() and line != "Assistant:"]
    text = f"Echo: {lines[-1].removeprefix('User: ') if lines else ''}"
    finish = "stop"
    if body.get("max_tokens") and len(text) > body["max_tokens"] * 4:
        text, finish = text[: body["max_tokens"] * 4], "length"
    usage = {"prompt_tokens": _tokens(body["prompt"]), "completion_tokens": _tokens(text)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    if not body.get("stream"):
        reply = {
            "id": "cmpl-fake",
            "object": "text_completion",
            "choices": [{"index": 0, "text": text, "finish_reason": finish}],
            "usage": usage,
        }
        return send(h, 200, json.dumps(reply).encode(), "application/json")
    _start_stream(h)
    for piece in _pieces(text):
        _sse(h, {"choices": [{"index": 0, "text": piece, "finish_reason": None}]})
    _sse(h, {"choices": [{"index": 0, "text": "", "finish_reason": finish}]})
    _sse(h, {"choices": [], "usage": usage})
    _sse(h, "[DONE]")


# --- OpenAI embeddings ------------------------------------------------------------------------


def fake_vector(text: Any, dimensions: int = 8) -> list[float]:
    """A deterministic unit-ish vector for a text: the same text, the same vector."""
    digest = hashlib.sha256(json.dumps(text).encode()).digest() * (dimensions // 32 + 1)
    return [round(b / 127.5 - 1, 6) for b in digest[:dimensions]]


def embeddings_model(rec, h):
    """An OpenAI-shaped /embeddings server: floats or base64, as asked; `dimensions`."""
    import base64
    import struct

    body = rec.json()
    raw = body.get("input")
    inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
    if not inputs or any(i in ("", None, []) for i in inputs):
        return _bad(h, 400, "input: must not be empty")
    dimensions = body.get("dimensions", 8)
    data = []
    for index, text in enumerate(inputs):
        vector = fake_vector(text, dimensions)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(_tokens(t) for t in inputs)
    reply = {"object": "list", "data": data, "model": body["model"],
             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}  # fmt: skip
    send(h, 200, json.dumps(reply).encode(), "application/json")


def custom_embeddings_model(rec, h):
    """A server with its own shape: {"texts": [...]} in, {"vectors": [...]} out."""
    body = rec.json()
    vectors = [fake_vector(t, 8) for t in body["texts"]]
    reply = {"vectors": vectors, "meta": {"tokens": sum(_tokens(t) for t in body["texts"])}}
    send(h, 200, json.dumps(reply).encode(), "application/json")
