"""Tools, tool choice and response formats as the Sandbox takes them: typed as JSON,
checked (each schema must be a valid JSON Schema) and turned into the neutral prompt's
parts; and the conversation's turns (text, tool calls, tool results) as its messages."""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import SchemaError
from jsonschema.validators import validator_for

from integrations.llm import inputs
from integrations.llm.chat import (
    Message,
    OutputFormat,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TOOLS = 32
EXAMPLE_TOOLS = json.dumps(
    [
        {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ],
    indent=2,
)


class ToolsError(ValueError):
    """Why what was typed is not a tool list or a schema: a sentence for the field."""


def check_schema(schema: Any, what: str) -> dict:
    if not isinstance(schema, dict):
        raise ToolsError(f"{what} must be a JSON object (a JSON Schema).")
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise ToolsError(f"{what} is not a valid JSON Schema: {exc.message}") from exc
    return schema


def _json(text: str, what: str) -> Any:
    try:
        return inputs.parse_json_text(text, what)
    except json.JSONDecodeError as exc:
        raise ToolsError(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}).") from exc
    except inputs.InputError as exc:
        raise ToolsError(str(exc)) from exc


def parse_tools(text: str) -> tuple[Tool, ...]:
    """A list of tools, each {"name", "description", "parameters"} (OpenAI's
    {"type": "function", "function": {...}} is taken too)."""
    if not (text or "").strip():
        return ()
    raw = _json(text, "The tools")
    if not isinstance(raw, list) or len(raw) > MAX_TOOLS:
        raise ToolsError(f"The tools must be a list of up to {MAX_TOOLS} objects.")
    tools = []
    for i, item in enumerate(raw, 1):
        spec = item.get("function") if isinstance(item, dict) and "function" in item else item
        if not isinstance(spec, dict):
            raise ToolsError(f"Tool {i} must be an object with a name.")
        name = spec.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise ToolsError(f"Tool {i}: the name is 1-64 letters, digits, _ or -.")
        parameters = spec.get("parameters", {"type": "object", "properties": {}})
        description = spec.get("description", "")
        if not isinstance(description, str):
            raise ToolsError(f"Tool {i} ({name}): the description must be text.")
        tools.append(
            Tool(name, description, check_schema(parameters, f"Tool {i} ({name}): parameters"))
        )
    if len({t.name for t in tools}) != len(tools):
        raise ToolsError("Two tools have the same name.")
    return tuple(tools)


def output_format(kind: str, schema_text: str) -> OutputFormat | None:
    if kind in ("", "text"):
        return None
    if kind == "json_object":
        return OutputFormat("json_object")
    schema = check_schema(_json(schema_text or "", "The response schema"), "The response schema")
    return OutputFormat("json_schema", schema, "response", True)


def tool_choice(mode: str, tools: tuple[Tool, ...]) -> ToolChoice | None:
    if not tools or mode in ("", "auto"):
        return None
    return ToolChoice(mode)


def messages(turns: list[dict]) -> tuple[Message, ...]:
    """The conversation's turns as messages: an assistant turn may carry tool calls
    ({"id", "name", "arguments"}); a tool turn answers one of them."""
    out = []
    for turn in turns:
        role = turn["role"]
        if role == "tool":
            out.append(
                Message("tool", (ToolResult(turn.get("tool_call_id", ""), turn["content"]),))
            )
            continue
        parts: list = [Text(turn["content"])] if turn["content"] else []
        for call in turn.get("tool_calls") or []:
            parts.append(ToolCall(call["id"], call["name"], call.get("arguments") or "{}"))
        out.append(Message(role, tuple(parts)))
    return tuple(out)


def calls_of(text: str) -> list[dict]:
    """The tool calls a posted assistant turn carries (hidden JSON), checked."""
    if not (text or "").strip():
        return []
    raw = _json(text, "A turn's tool calls")
    calls = []
    for call in raw if isinstance(raw, list) else []:
        if (
            isinstance(call, dict)
            and isinstance(call.get("id"), str)
            and isinstance(call.get("name"), str)
        ):
            arguments = call.get("arguments")
            calls.append({"id": call["id"][:64], "name": call["name"][:64],
                          "arguments": arguments if isinstance(arguments, str) else "{}"})  # fmt: skip
    return calls


def turns_of(messages_: tuple[Message, ...]) -> list[dict]:
    """Messages as the turns a run keeps (the inverse of `messages`)."""
    turns = []
    for message in messages_:
        for result in message.tool_results:
            turns.append(
                {"role": "tool", "content": result.content, "tool_call_id": result.call_id}
            )
        if message.role == "tool":
            continue
        turn: dict = {"role": message.role, "content": message.text()}
        if message.tool_calls:
            turn["tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
            ]
        turns.append(turn)
    return turns


def options_of(prompt) -> dict:
    """The prompt's tools, tool choice and response format, as a run keeps them."""
    out: dict = {}
    if prompt.tools:
        out["tools"] = [
            {"name": t.name, "description": t.description, "parameters": t.parameters}
            for t in prompt.tools
        ]
    if prompt.tool_choice is not None:
        out["tool_choice"] = prompt.tool_choice.mode
    if prompt.output is not None:
        out["response_format"] = {"type": prompt.output.kind, "schema": prompt.output.schema}
    return out


def prompt_parts(options: dict) -> dict:
    """A run's kept options as the Prompt's fields (the inverse of `options_of`)."""
    tools = tuple(
        Tool(t["name"], t.get("description", ""), t.get("parameters"))
        for t in options.get("tools") or []
    )
    output = options.get("response_format") or {}
    return {
        "tools": tools,
        "tool_choice": ToolChoice(options["tool_choice"]) if options.get("tool_choice") else None,
        "output": OutputFormat(output["type"], output.get("schema"), "response", True)
        if output
        else None,
    }


def initial_of(options: dict) -> dict:
    """A run's kept options as the Sandbox form's fields, to open it again."""
    initial: dict = {}
    if options.get("tools"):
        initial["tools"] = json.dumps(options["tools"], indent=2)
    if options.get("tool_choice"):
        initial["tool_choice"] = options["tool_choice"]
    output = options.get("response_format") or {}
    if output:
        initial["response_format"] = output["type"]
        if output.get("schema"):
            initial["response_schema"] = json.dumps(output["schema"], indent=2)
    return initial
