"""Custom JSON request bodies (upstream side only): a template with {{placeholders}},
and, for the custom protocol, response paths that say where the answer is.

A template that carries no part of the conversation ({{messages}}, {{user_prompt}} or one
of their aliases) is refused at Test and Save: the person's input would be dropped and a
literal answered instead. Tools go only where the template maps them ({{tools}}).
"""

from __future__ import annotations

import json
import re
from typing import Any

from integrations.llm import chat, inputs
from integrations.llm.chat import (
    Completion,
    EmbeddingsInput,
    Media,
    Message,
    Prompt,
    Text,
    ToolCall,
    ToolResult,
)
from integrations.llm.wires import openai_chat
from integrations.llm.wires.common import (
    Unsupported,
    as_text,
    get_path,
    make_usage,
    merged_params,
    text_of,
)

PLACEHOLDERS = (
    "model", "system_prompt", "system", "user_prompt", "user", "prompt", "messages", "tools",
    "tool_choice", "max_tokens", "temperature", "top_p", "stop", "input", "dimensions",
)  # fmt: skip
CONVERSATION = ("messages", "user_prompt", "user", "prompt")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_BARE_PLACEHOLDER = re.compile(r'(?<!")\{\{\s*(\w+)\s*\}\}(?!")')

# Where a request body may fix a parameter: the names each protocol uses for it.
PARAM_KEYS = {
    "temperature": ("temperature",),
    "max_tokens": ("max_tokens", "max_completion_tokens"),
    "top_p": ("top_p",),
    "stop": ("stop", "stop_sequences"),
}
DEFAULT_TEMPLATE = {
    "model": "{{model}}",
    "messages": "{{messages}}",
    "max_tokens": "{{max_tokens}}",
    "temperature": "{{temperature}}",
}
# OpenAI-only parameters a body may leave out without changing the answer.
_NO_OPS = (
    "user",
    "metadata",
    "store",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
    "seed",
)
FINISH = openai_chat.FINISH | {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def parse(text: str) -> Any:
    """Parse a request template; bare placeholders like `"n": {{max_tokens}}` are allowed."""
    try:
        return inputs.parse_json_text(_BARE_PLACEHOLDER.sub(r'"{{\1}}"', text), "The body")
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from exc
    except inputs.InputError as exc:
        raise ValueError(str(exc)) from exc


def placeholders(template: Any) -> set[str]:
    return set(_PLACEHOLDER.findall(json.dumps(template)))


def unknown_placeholders(template: Any) -> set[str]:
    return placeholders(template) - set(PLACEHOLDERS)


def conversation_problem(template: Any, kind: str = "chat") -> str | None:
    """Why a template cannot carry the conversation, or an embeddings model's texts
    (None when it can)."""
    if template is None:
        return None
    if kind == "embeddings":
        if "input" in placeholders(template):
            return None
        return (
            "This body carries no input: an embeddings model's body needs {{input}} (the "
            "list of texts to embed), or every call would embed the same literal text."
        )
    if placeholders(template) & set(CONVERSATION):
        return None
    return (
        "This body carries no part of the conversation: it needs {{messages}} or "
        "{{user_prompt}} somewhere, or every call would send the same literal text and the "
        "person's input would be dropped."
    )


def fixed_params(template: Any) -> dict[str, Any]:
    """The parameters a request body sets to a literal value. Such a value wins over what
    a caller passes (the body is sent as saved), so the Sandbox shows it as "set by the
    model's request body" until it is overridden."""
    if not isinstance(template, dict):
        return {}
    fixed = {}
    for param, keys in PARAM_KEYS.items():
        for key in keys:
            value = template.get(key)
            if key in template and not _PLACEHOLDER.fullmatch(str(value).strip()):
                fixed[param] = value
                break
    return fixed


def _overridden(body: Any, prompt: Prompt) -> Any:
    """Replace (or, for None, remove) the body's literal values the person overrode."""
    if not prompt.overrides or not isinstance(body, dict):
        return body
    for param in prompt.overrides:
        value = prompt.params.get(param)
        keys = [k for k in PARAM_KEYS.get(param, (param,)) if k in body] or [param]
        for key in keys:
            body.pop(key, None)
            if value is not None:
                body[key] = value
    return body


_DROP = object()


def render(template: Any, values: dict[str, Any]) -> Any:
    """Fill placeholders. A string that is only a placeholder takes the value's JSON type;
    a placeholder inside a longer string is inserted as text. Keys whose whole value is
    a placeholder with no value (e.g. no temperature given) are left out."""

    def fill(node: Any) -> Any:
        if isinstance(node, str):
            whole = _PLACEHOLDER.fullmatch(node.strip())
            if whole and whole.group(1) in values:
                value = values[whole.group(1)]
                return _DROP if value is None else value
            return _PLACEHOLDER.sub(lambda m: _as_text(values.get(m.group(1), m.group(0))), node)
        if isinstance(node, list):
            return [v for v in (fill(item) for item in node) if v is not _DROP]
        if isinstance(node, dict):
            return {k: v for k, v in ((k, fill(v)) for k, v in node.items()) if v is not _DROP}
        return node

    result = fill(template)
    return None if result is _DROP else result


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _check(template: Any, prompt: Prompt) -> None:
    used = placeholders(template)
    if problem := conversation_problem(template):
        raise Unsupported("messages", problem)
    if prompt.tools and "tools" not in used:
        raise Unsupported(
            "tools",
            "This model's request body has no {{tools}} placeholder, so it cannot take tools.",
        )
    if prompt.output is not None and prompt.output.kind != "text":
        raise Unsupported(
            "response_format", "This model's request body has no place for a response format."
        )
    openai = {k for k in prompt.extra.get("openai") or {} if k not in _NO_OPS}
    if openai:
        name = sorted(openai)[0]
        raise Unsupported(
            name, f"`{name}` is not supported: this model's request body does not carry it."
        )
    if "messages" not in used:
        for kind, name in (
            (ToolCall, "tool calls"),
            (ToolResult, "tool results"),
            (Media, "images or files"),
        ):
            if prompt.has(kind):
                raise Unsupported(
                    "messages",
                    f"This model's request body has no {{{{messages}}}}, so the conversation's {name} cannot be sent.",
                )


def values(config, prompt: Prompt) -> dict[str, Any]:
    params = merged_params(config, prompt)
    messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
    for message in prompt.messages:
        messages += openai_chat.message_out(message)
    tools = [openai_chat.tool_out(t) for t in prompt.tools] or None
    choice = openai_chat.tool_choice_out(prompt.tool_choice) if prompt.tool_choice else None
    return {
        "model": config.model_id,
        "system_prompt": prompt.system, "system": prompt.system,
        "user_prompt": prompt.user, "user": prompt.user, "prompt": prompt.user,
        "messages": messages, "tools": tools, "tool_choice": choice if tools else None,
        "max_tokens": params.get("max_tokens"), "temperature": params.get("temperature"),
        "top_p": params.get("top_p"), "stop": params.get("stop"),
    }  # fmt: skip


def write_request(config, prompt: Prompt, template: Any = None) -> Any:
    template = template if template is not None else (config.request_template or DEFAULT_TEMPLATE)
    if isinstance(prompt, EmbeddingsInput):
        if problem := conversation_problem(template, "embeddings"):
            raise Unsupported("input", problem)
        if any(not isinstance(t, str) for t in prompt.texts):
            raise Unsupported("input", "This model's request body takes texts, not token ids.")
        filled = {
            "model": config.model_id,
            "input": list(prompt.texts),
            "dimensions": prompt.dimensions,
        }
        return render(template, filled)
    _check(template, prompt)
    return _overridden(render(template, values(config, prompt)), prompt)


DEFAULT_PATHS = {
    "content": "choices.0.message.content",
    "finish_reason": "choices.0.finish_reason",
    "prompt_tokens": "usage.prompt_tokens",
    "completion_tokens": "usage.completion_tokens",
    "total_tokens": "usage.total_tokens",
    "tool_calls": "choices.0.message.tool_calls",
}


def read_reply(data: Any, config, prompt: Prompt | None = None) -> Completion:
    """A custom protocol's answer, found where its response paths say."""
    paths = config.response_paths

    def at(name: str) -> Any:
        return get_path(data, getattr(paths, name, "") or DEFAULT_PATHS[name])

    content = at("content")
    calls = openai_chat.tool_calls_in(at("tool_calls"), "tool_calls", strict=False)
    if content is None and not calls:
        raise ValueError(
            f"Nothing at the content path {paths.content or DEFAULT_PATHS['content']!r}."
        )
    if content is not None and not isinstance(content, str):
        content = text_of(content) if isinstance(content, list) else json.dumps(content)
    parts = ([Text(content)] if content else []) + calls
    message = Message("assistant", tuple(parts))
    finish = chat.settled_finish(
        chat.finish_from(FINISH, as_text(at("finish_reason"))) or chat.Finish("stop", ""), message
    )
    usage = make_usage(at("prompt_tokens"), at("completion_tokens"), at("total_tokens"))
    return Completion(message, finish, usage)
