"""What every wire format's module shares: reading untrusted JSON, counts, parameters."""

from __future__ import annotations

import json
import re
from typing import Any

from integrations.llm.chat import Prompt, Usage

MAX_COUNT = 2**31 - 1  # what an integer column holds; a larger count is not believed


class Unsupported(ValueError):
    """A request this format cannot express, refused by the parameter's name."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param, self.message = param, message


class UpstreamError(ValueError):
    """An error the upstream reported inside a stream (its message, unscrubbed yet)."""


class WireError(ValueError):
    """A request a door cannot read: 400 in the door's own error shape, naming the field."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_request"):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def requested_model(body: Any) -> str:
    """The `model` of a caller's body (a JSON object), checked as every door checks it."""
    from integrations.llm import inputs

    if not isinstance(body, dict):
        raise WireError("The body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise WireError("`model` is required.", "model")
    try:
        inputs.clean_text(model, "`model`")
    except inputs.InputError as exc:
        raise WireError(str(exc), "model") from exc
    return model


def get_path(data: Any, path: str) -> Any:
    """Return data at a dotted path such as `choices.0.message.content` or `choices[0].text`."""
    if not path:
        return None
    node = data
    for part in re.sub(r"\[(\d+)\]", r".\1", path).strip(".").split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.lstrip("-").isdigit():
            index = int(part)
            node = node[index] if -len(node) <= index < len(node) else None
        else:
            return None
        if node is None:
            return None
    return node


def count(value: Any) -> int | None:
    """Return a token count an upstream reported, or None for anything that is not one."""
    if isinstance(value, bool):
        return None
    if (
        isinstance(value, float)
        and value.is_integer()
        and abs(value) <= MAX_COUNT
        or isinstance(value, str)
        and value.isascii()
        and value.isdigit()
        and len(value) < 11
    ):
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_COUNT:
        return value
    return None


def make_usage(prompt: Any, completion: Any, total: Any = None, **more: Any) -> Usage:
    usage = Usage(
        count(prompt), count(completion), count(total), **{k: count(v) for k, v in more.items()}
    )
    if usage.total_tokens is None and None not in (usage.prompt_tokens, usage.completion_tokens):
        usage.total_tokens = count(usage.prompt_tokens + usage.completion_tokens)
    return usage


def as_dict(value: Any) -> dict:
    """Return value if it is an object; upstreams send "usage": "lots" too."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def text_of(content: Any) -> str | None:
    """Return message content as text; OpenAI may send a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str))
    return None


def arguments_object(arguments: str) -> dict:
    """A tool call's JSON arguments as an object (formats that send objects need one):
    empty means {}; text that is not an object is kept under "input"."""
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except (ValueError, RecursionError):
        return {"input": arguments}
    return value if isinstance(value, dict) else {"input": value}


# Sampling parameters every format models, and how each is checked.
SAMPLING = ("temperature", "top_p", "top_k", "max_tokens", "stop", "seed")


def merged_params(config, prompt: Prompt) -> dict:
    """The model's defaults overlaid by the prompt's parameters, without blanks."""
    params = {k: v for k, v in config.default_params.items() if v not in (None, "", [])}
    params.update({k: v for k, v in prompt.params.items() if v not in (None, "", [])})
    return params


def stop_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def extra(prompt: Prompt, fmt: str) -> dict:
    """What only `fmt` knows, as the caller sent it."""
    return dict(prompt.extra.get(fmt) or {})


def number_field(body: dict, name: str, low: float, high: float) -> float | None:
    """A door's numeric field, checked against its range (None: absent)."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise WireError(f"`{name}` must be a number from {low} to {high}.", name)
    return value


def integer_field(body: dict, name: str, low: int, high: int = 2**31 - 1) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WireError(f"`{name}` must be a whole number from {low} to {high}.", name)
    return value
