"""One adapter per wire format: normalize the endpoint, build the request, parse the reply."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from integrations.llm import inputs
from integrations.llm.config import LLMConfig, Prompt, ResponsePaths, Usage
from integrations.llm.errors import LLMError

PLACEHOLDERS = (
    "model",
    "system_prompt",
    "user_prompt",
    "messages",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
)
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_BARE_PLACEHOLDER = re.compile(r'(?<!")\{\{\s*(\w+)\s*\}\}(?!")')
_VERSION_SEGMENT = re.compile(r"/v\d+[a-z0-9]*(/|$)")


def messages_for(prompt: Prompt) -> list[dict]:
    messages = []
    if prompt.system:
        messages.append({"role": "system", "content": prompt.system})
    return messages + prompt.conversation()


def transcript(prompt: Prompt) -> str:
    """A conversation as one text, for protocols that take a single prompt."""
    turns = prompt.conversation()
    if len(turns) == 1:
        text = turns[0]["content"]
    else:
        text = "\n\n".join(f"{t['role'].capitalize()}: {t['content']}" for t in turns)
        text += "\n\nAssistant:"
    return f"{prompt.system}\n\n{text}" if prompt.system else text


# Where a request body may fix a parameter: the names each protocol uses for it.
PARAM_KEYS = {
    "temperature": ("temperature",),
    "max_tokens": ("max_tokens", "max_completion_tokens"),
    "top_p": ("top_p",),
    "stop": ("stop", "stop_sequences"),
}


def fixed_params(template: Any) -> dict[str, Any]:
    """Return the parameters a custom request body sets to a literal value.

    Such a value wins over what a caller passes (the body is sent as saved), so the
    Sandbox shows it as "set by the model's request body" until it is overridden.
    """
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


def apply_overrides(body: Any, prompt: Prompt) -> Any:
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


def merged_params(config: LLMConfig, prompt: Prompt) -> dict:
    """Return the model's defaults overlaid by the prompt's parameters, without blanks."""
    params = {k: v for k, v in config.default_params.items() if v not in (None, "", [])}
    params.update({k: v for k, v in prompt.params.items() if v not in (None, "", [])})
    return params


# --- custom JSON templates ----------------------------------------------------------


def parse_template(text: str) -> Any:
    """Parse a request template; bare placeholders like `"n": {{max_tokens}}` are allowed."""
    try:
        return inputs.parse_json_text(_BARE_PLACEHOLDER.sub(r'"{{\1}}"', text), "The body")
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from exc
    except inputs.InputError as exc:
        raise ValueError(str(exc)) from exc


def unknown_placeholders(template: Any) -> set[str]:
    text = json.dumps(template)
    return {name for name in _PLACEHOLDER.findall(text) if name not in PLACEHOLDERS}


_DROP = object()


def render_template(template: Any, values: dict[str, Any]) -> Any:
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
    if isinstance(value, str):
        return value
    return json.dumps(value)


def template_values(config: LLMConfig, prompt: Prompt) -> dict[str, Any]:
    params = merged_params(config, prompt)
    return {
        "model": config.model_id,
        "system_prompt": prompt.system,
        "user_prompt": prompt.user,
        "messages": messages_for(prompt),
        "max_tokens": params.get("max_tokens"),
        "temperature": params.get("temperature"),
        "top_p": params.get("top_p"),
        "stop": params.get("stop"),
    }


# --- reading replies ----------------------------------------------------------------


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


MAX_COUNT = 2**31 - 1  # what an integer column holds; a larger count is not believed


def _int_or_none(value: Any) -> int | None:
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


def make_usage(prompt: Any, completion: Any, total: Any) -> Usage:
    usage = Usage(_int_or_none(prompt), _int_or_none(completion), _int_or_none(total))
    if usage.total_tokens is None and None not in (usage.prompt_tokens, usage.completion_tokens):
        usage.total_tokens = _int_or_none(usage.prompt_tokens + usage.completion_tokens)
    return usage


def _dict(value: Any) -> dict:
    """Return value if it is an object; upstreams send "usage": "lots" too."""
    return value if isinstance(value, dict) else {}


def openai_usage(data: dict) -> Usage:
    """Return the usage block of an OpenAI-shaped reply or stream chunk."""
    usage = _dict(data.get("usage")) if isinstance(data, dict) else {}
    return make_usage(
        usage.get("prompt_tokens"), usage.get("completion_tokens"), usage.get("total_tokens")
    )


def _text_of(content: Any) -> str | None:
    """Return message content as text; OpenAI may send a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str))
    return None


# --- endpoint normalization -----------------------------------------------------------


def normalize_endpoint(endpoint: str, suffixes: tuple[str, ...]) -> tuple[str, list[str]]:
    """Return the base URL (no trailing slash, no protocol path) and warnings about the input."""
    warnings: list[str] = []
    url = endpoint.strip()
    parts = urlsplit(url)
    path = parts.path
    if path.endswith("/") and path != "/":
        warnings.append("Trailing slash removed.")
    path = path.rstrip("/")
    for suffix in suffixes:
        if path.endswith(suffix):
            path = path[: -len(suffix)].rstrip("/")
            warnings.append(
                f"The endpoint already ended in {suffix}; it was treated as the base URL."
            )
            break
    collapsed = re.sub(r"(/v\d+[a-z0-9]*)(\1)+(?=/|$)", r"\1", path)
    if collapsed != path:
        warnings.append("Doubled version segment (e.g. /v1/v1) collapsed to one.")
        path = collapsed
    base = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    return base, warnings


class Adapter:
    key = ""
    label = ""
    suffixes: tuple[str, ...] = ()
    path = ""

    def normalize(self, endpoint: str) -> tuple[str, list[str]]:
        base, warnings = normalize_endpoint(endpoint, self.suffixes)
        if self.path and not _VERSION_SEGMENT.search(urlsplit(base).path + "/"):
            warnings.append(
                "No version segment such as /v1 in the endpoint; most OpenAI-compatible "
                "servers need it."
            )
        return base, warnings

    def url(self, config: LLMConfig) -> str:
        return config.endpoint.rstrip("/") + self.path

    def models_url(self, config: LLMConfig) -> str | None:
        return config.endpoint.rstrip("/") + "/models"

    def headers(self, config: LLMConfig) -> dict[str, str]:
        return {}

    def default_body(self, config: LLMConfig, prompt: Prompt) -> dict:
        raise NotImplementedError

    def default_template(self) -> dict:
        """Return the body this protocol sends, as an editable template."""
        return {
            "model": "{{model}}",
            "messages": "{{messages}}",
            "max_tokens": "{{max_tokens}}",
            "temperature": "{{temperature}}",
        }

    def body(self, config: LLMConfig, prompt: Prompt) -> Any:
        if config.request_template is not None:
            body = render_template(config.request_template, template_values(config, prompt))
            return apply_overrides(body, prompt)
        return self.default_body(config, prompt)

    def parse(self, data: Any, config: LLMConfig) -> tuple[str, str, Usage]:
        raise NotImplementedError

    # Streaming: adapters that stream turn `stream` on and read one SSE data object at a time.
    streams = False

    def stream_body(self, body: Any) -> Any:
        return body

    def parse_event(self, data: Any, state: dict) -> str:
        """Return the text delta of one stream event; keep finish reason and usage in state."""
        return ""


def _require(value: Any, what: str) -> Any:
    if value is None:
        raise LLMError("bad_response", f"The answer has no {what}.")
    return value


def _openai_event(data: Any, state: dict, text_of_choice) -> str:
    if not isinstance(data, dict):
        return ""
    if isinstance(data.get("usage"), dict):
        state["usage"] = openai_usage(data)
    choice = get_path(data, "choices.0")
    if not isinstance(choice, dict):
        return ""
    if isinstance(choice.get("finish_reason"), str) and choice["finish_reason"]:
        state["finish_reason"] = choice["finish_reason"]
    text = text_of_choice(choice)
    return text if isinstance(text, str) else ""


class OpenAIChat(Adapter):
    key = "openai-chat"
    label = "OpenAI chat completions"
    suffixes = ("/chat/completions",)
    path = "/chat/completions"
    streams = True

    def stream_body(self, body: Any) -> Any:
        if isinstance(body, dict):
            body = dict(body, stream=True)
            body.setdefault("stream_options", {"include_usage": True})
        return body

    def parse_event(self, data: Any, state: dict) -> str:
        return _openai_event(data, state, lambda c: _text_of(_dict(c.get("delta")).get("content")))

    def default_body(self, config: LLMConfig, prompt: Prompt) -> dict:
        return {"model": config.model_id, "messages": messages_for(prompt)} | merged_params(
            config, prompt
        )

    def parse(self, data: Any, config: LLMConfig) -> tuple[str, str, Usage]:
        choice = _require(get_path(data, "choices.0"), "choices[0]")
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            # Some servers answer chat requests in the completions shape.
            text = choice.get("text") if isinstance(choice, dict) else None
            content = _require(text, "choices[0].message")
        else:
            content = _text_of(message.get("content"))
            if content is None:
                content = ""  # a tool call or a refusal without text
        return content, _reason(choice.get("finish_reason")), openai_usage(data)


def _reason(value: Any) -> str:
    return value if isinstance(value, str) else ""


class OpenAICompletions(OpenAIChat):
    key = "openai-completions"
    label = "OpenAI completions (legacy)"
    suffixes = ("/completions",)
    path = "/completions"

    def default_template(self) -> dict:
        return {
            "model": "{{model}}",
            "prompt": "{{user_prompt}}",
            "max_tokens": "{{max_tokens}}",
            "temperature": "{{temperature}}",
        }

    def default_body(self, config: LLMConfig, prompt: Prompt) -> dict:
        return {"model": config.model_id, "prompt": transcript(prompt)} | merged_params(
            config, prompt
        )

    def parse_event(self, data: Any, state: dict) -> str:
        return _openai_event(data, state, lambda c: c.get("text") or "")

    def parse(self, data: Any, config: LLMConfig) -> tuple[str, str, Usage]:
        choice = _require(get_path(data, "choices.0"), "choices[0]")
        text = _require(choice.get("text") if isinstance(choice, dict) else None, "choices[0].text")
        if not isinstance(text, str):
            raise LLMError("bad_response", "The answer's choices[0].text is not text.")
        return text, _reason(choice.get("finish_reason")), openai_usage(data)


class AnthropicMessages(Adapter):
    key = "anthropic-messages"
    label = "Anthropic messages"
    suffixes = ("/messages",)
    path = "/messages"
    VERSION = "2023-06-01"
    streams = True

    def stream_body(self, body: Any) -> Any:
        return dict(body, stream=True) if isinstance(body, dict) else body

    def parse_event(self, data: Any, state: dict) -> str:
        if not isinstance(data, dict):
            return ""
        kind = data.get("type")
        usage = state.setdefault("usage", Usage())
        if kind == "message_start":
            start = _dict(get_path(data, "message.usage"))
            usage.prompt_tokens = _int_or_none(start.get("input_tokens"))
        elif kind == "content_block_delta":
            text = get_path(data, "delta.text")
            return text if isinstance(text, str) else ""
        elif kind == "message_delta":
            # message_delta's usage is cumulative: proxies such as LiteLLM put the input
            # tokens here and send 0 in message_start.
            delta_usage = _dict(data.get("usage"))
            if _int_or_none(delta_usage.get("input_tokens")):
                usage.prompt_tokens = _int_or_none(delta_usage.get("input_tokens"))
            usage.completion_tokens = _int_or_none(delta_usage.get("output_tokens"))
            state["finish_reason"] = _reason(get_path(data, "delta.stop_reason"))
            if None not in (usage.prompt_tokens, usage.completion_tokens):
                usage.total_tokens = _int_or_none(usage.prompt_tokens + usage.completion_tokens)
        elif kind == "error":
            state["error"] = get_path(data, "error.message") or "stream error"
        return ""

    def headers(self, config: LLMConfig) -> dict[str, str]:
        return {"anthropic-version": self.VERSION}

    def default_template(self) -> dict:
        return {
            "model": "{{model}}",
            "system": "{{system_prompt}}",
            "messages": [{"role": "user", "content": "{{user_prompt}}"}],
            "max_tokens": "{{max_tokens}}",
            "temperature": "{{temperature}}",
        }

    def default_body(self, config: LLMConfig, prompt: Prompt) -> dict:
        params = merged_params(config, prompt)
        if "stop" in params:
            stop = params.pop("stop")
            params["stop_sequences"] = [stop] if isinstance(stop, str) else stop
        body: dict[str, Any] = {"model": config.model_id, "max_tokens": 1024}
        if prompt.system:
            body["system"] = prompt.system
        body["messages"] = prompt.conversation()
        return body | params

    def parse(self, data: Any, config: LLMConfig) -> tuple[str, str, Usage]:
        blocks = _require(data.get("content") if isinstance(data, dict) else None, "content")
        if not isinstance(blocks, list):
            raise LLMError("bad_response", "The answer's content is not a list of blocks.")
        text = "".join(
            b["text"]
            for b in blocks
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        )
        usage = _dict(data.get("usage"))
        return (
            text,
            _reason(data.get("stop_reason")),
            make_usage(usage.get("input_tokens"), usage.get("output_tokens"), None),
        )


class AzureOpenAI(OpenAIChat):
    key = "azure-openai"
    label = "Azure OpenAI"
    suffixes = ("/chat/completions",)
    DEFAULT_API_VERSION = "2024-10-21"

    def normalize(self, endpoint: str) -> tuple[str, list[str]]:
        base, warnings = normalize_endpoint(endpoint, self.suffixes)
        parts = urlsplit(base)
        path = re.sub(r"/openai(/deployments/[^/]+)?$", "", parts.path)
        if path != parts.path or parts.query:
            warnings.append(
                "Use the resource URL (https://NAME.openai.azure.com); deployment and "
                "api-version have their own fields."
            )
        return urlunsplit((parts.scheme, parts.netloc, path, "", "")), warnings

    def url(self, config: LLMConfig) -> str:
        query = urlencode({"api-version": config.api_version or self.DEFAULT_API_VERSION})
        deployment = config.deployment or config.model_id
        return f"{config.endpoint.rstrip('/')}/openai/deployments/{deployment}/chat/completions?{query}"

    def models_url(self, config: LLMConfig) -> str | None:
        return None

    def default_template(self) -> dict:
        return {
            "messages": "{{messages}}",
            "max_tokens": "{{max_tokens}}",
            "temperature": "{{temperature}}",
        }

    def default_body(self, config: LLMConfig, prompt: Prompt) -> dict:
        # Azure picks the model by deployment in the URL, not by a body field.
        return {"messages": messages_for(prompt)} | merged_params(config, prompt)


class CustomTemplate(Adapter):
    key = "custom"
    label = "Custom JSON template"

    DEFAULT_PATHS = ResponsePaths(
        content="choices.0.message.content",
        finish_reason="choices.0.finish_reason",
        prompt_tokens="usage.prompt_tokens",
        completion_tokens="usage.completion_tokens",
        total_tokens="usage.total_tokens",
    )
    DEFAULT_TEMPLATE = {
        "model": "{{model}}",
        "messages": "{{messages}}",
        "max_tokens": "{{max_tokens}}",
        "temperature": "{{temperature}}",
    }

    def default_template(self) -> dict:
        return dict(self.DEFAULT_TEMPLATE)

    def normalize(self, endpoint: str) -> tuple[str, list[str]]:
        url = endpoint.strip()
        return url, []

    def url(self, config: LLMConfig) -> str:
        return config.endpoint

    def models_url(self, config: LLMConfig) -> str | None:
        return None

    def body(self, config: LLMConfig, prompt: Prompt) -> Any:
        template = config.request_template
        if template is None:
            template = self.DEFAULT_TEMPLATE
        return render_template(template, template_values(config, prompt))

    def parse(self, data: Any, config: LLMConfig) -> tuple[str, str, Usage]:
        paths = config.response_paths
        defaults = self.DEFAULT_PATHS
        content_path = paths.content or defaults.content
        content = get_path(data, content_path)
        if content is None:
            raise LLMError("bad_response", f"Nothing at the content path {content_path!r}.")
        if not isinstance(content, str):
            content = _text_of(content) if isinstance(content, list) else json.dumps(content)
        return (
            content,
            _reason(get_path(data, paths.finish_reason or defaults.finish_reason)),
            make_usage(
                get_path(data, paths.prompt_tokens or defaults.prompt_tokens),
                get_path(data, paths.completion_tokens or defaults.completion_tokens),
                get_path(data, paths.total_tokens or defaults.total_tokens),
            ),
        )


ADAPTERS: dict[str, Adapter] = {
    a.key: a
    for a in (
        OpenAIChat(),
        OpenAICompletions(),
        AnthropicMessages(),
        AzureOpenAI(),
        CustomTemplate(),
    )
}


def adapter_for(protocol: str) -> Adapter:
    try:
        return ADAPTERS[protocol]
    except KeyError:
        raise LLMError("config", f"Unknown protocol {protocol!r}.") from None
