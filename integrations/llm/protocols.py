"""How to reach a server of each protocol: its URL, headers and model list, and the wire
format it speaks (integrations/llm/wires/, one module per format, both directions).

A model may replace its protocol's request body with a template of its own
(wires/template.py); the answer is still read in the protocol's format, except for the
custom protocol, whose answer is found by its response paths.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from integrations.llm.chat import EmbeddingsInput, Prompt
from integrations.llm.config import LLMConfig
from integrations.llm.errors import LLMError
from integrations.llm.wires import (
    anthropic,
    openai_chat,
    openai_completions,
    openai_embeddings,
    template,
)
from integrations.llm.wires.anthropic import door as anthropic_door
from integrations.llm.wires.common import Unsupported, count, merged_params

_VERSION_SEGMENT = re.compile(r"/v\d+[a-z0-9]*(/|$)")


def max_tokens_sent(config: LLMConfig, prompt: Prompt) -> int | None:
    """The max_tokens the upstream will receive for this prompt (None: it gets none and
    may answer up to the model's context). Read as the request body is built: a body's
    literal value wins unless overridden; else the caller's value, else the model's
    default, else what the protocol must send (Anthropic requires one)."""
    adapter = adapter_for(config.protocol)
    body = config.request_template
    if body is None and config.protocol == "custom":
        body = template.DEFAULT_TEMPLATE
    if body is None:
        value = merged_params(config, prompt).get("max_tokens", adapter.default_max_tokens)
    elif "max_tokens" in prompt.overrides:
        value = prompt.params.get("max_tokens")
    elif "max_tokens" in template.fixed_params(body):
        value = template.fixed_params(body)["max_tokens"]
    elif "max_tokens" in template.placeholders(body):
        value = merged_params(config, prompt).get("max_tokens")
    else:
        value = None
    return count(value) or None


# --- endpoint normalization -----------------------------------------------------------


# Paths of other calls that people paste as an endpoint by mistake.
OTHER_PATHS = (
    "/chat/completions",
    "/completions",
    "/models",
    "/messages",
    "/embeddings",
    "/responses",
)


def normalize_endpoint(endpoint: str, suffixes: tuple[str, ...]) -> tuple[str, list[str]]:
    """Return the base URL (no trailing slash, no protocol path) and warnings about the input."""
    warnings: list[str] = []
    url = endpoint.strip()
    parts = urlsplit(url)
    path = parts.path
    if path.endswith("/") and path != "/":
        warnings.append("Trailing slash removed.")
    path = path.rstrip("/")
    # The longest known call path the endpoint ends in: this protocol's own is stripped
    # (however often it was pasted); another call's is named, not guessed at.
    found = next((p for p in OTHER_PATHS if path.endswith(p)), None)
    if found is not None and found in suffixes:
        while path.endswith(found):  # pasted twice: .../chat/completions/chat/completions
            path = path[: -len(found)].rstrip("/")
        warnings.append(f"The endpoint already ended in {found}; it was treated as the base URL.")
    elif found is not None:
        warnings.append(
            f"The endpoint ends in {found}, the path of another API call, so requests would go "
            f"to …{found}{suffixes[0] if suffixes else ''}. Give the base URL (usually ending in /v1)."
        )
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
    wire: Any = openai_chat  # the module that reads and writes this protocol's format
    streams = False  # may a request ask for an event stream
    prefill = False  # does a trailing assistant message continue as the answer's start
    # What the protocol sends when nobody gives max_tokens (None: nothing is sent).
    default_max_tokens: int | None = None

    def normalize(self, endpoint: str) -> tuple[str, list[str]]:
        base, warnings = normalize_endpoint(endpoint, self.suffixes)
        if self.path and not _VERSION_SEGMENT.search(urlsplit(base).path + "/"):
            warnings.append(
                "No version segment such as /v1 in the endpoint; most OpenAI-compatible "
                "servers need it."
            )
        return base, warnings

    embeddings_path = "/embeddings"  # where an embeddings model of this protocol is asked

    def url(self, config: LLMConfig) -> str:
        if config.kind == "embeddings":
            if not self.embeddings_path:
                raise LLMError("config", f"The {self.label} protocol has no embeddings models.")
            return config.endpoint.rstrip("/") + self.embeddings_path
        if not self.path:
            raise LLMError("config", f"The {self.label} protocol serves embeddings models only.")
        return config.endpoint.rstrip("/") + self.path

    def models_url(self, config: LLMConfig) -> str | None:
        return config.endpoint.rstrip("/") + "/models"

    def headers(self, config: LLMConfig) -> dict[str, str]:
        return {}

    def default_template(self) -> dict:
        """Return the body this protocol sends, as an editable template."""
        return dict(template.DEFAULT_TEMPLATE)

    def write(self, config: LLMConfig, prompt: Prompt | EmbeddingsInput) -> Any:
        """The request body (raises wires.common.Unsupported for what it cannot carry)."""
        _check_kind(config, prompt)
        if config.request_template is not None:
            return template.write_request(config, prompt)
        if isinstance(prompt, EmbeddingsInput):
            return openai_embeddings.write_request(config, prompt)
        return self.wire.write_request(config, prompt)

    def read(self, data: Any, config: LLMConfig, prompt: Prompt | EmbeddingsInput):
        if isinstance(prompt, EmbeddingsInput):
            return openai_embeddings.read_reply(data, config, prompt)
        return self.wire.read_reply(data, config, prompt)

    def stream_reader(self, prompt: Prompt):
        return self.wire.StreamReader()

    def stream_body(self, body: Any) -> Any:
        return body

    def tap(self, scrubber, model: str):
        """What reads a forwarded stream in this protocol's own format, scrubbing it."""
        return openai_chat.ChunkTap(scrubber, model)


def _check_kind(config: LLMConfig, prompt: Any) -> None:
    """A chat model is sent conversations, an embeddings model texts to embed."""
    embeds = isinstance(prompt, EmbeddingsInput)
    if embeds and config.kind != "embeddings":
        raise Unsupported(
            "model", "This is a chat model: call it with a conversation, not texts to embed."
        )
    if not embeds and config.kind == "embeddings":
        raise Unsupported(
            "model", "This is an embeddings model: it embeds texts and does not chat."
        )


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


class OpenAICompletions(OpenAIChat):
    key = "openai-completions"
    label = "OpenAI completions (legacy)"
    suffixes = ("/completions",)
    path = "/completions"
    wire = openai_completions

    def default_template(self) -> dict:
        return {
            "model": "{{model}}",
            "prompt": "{{user_prompt}}",
            "max_tokens": "{{max_tokens}}",
            "temperature": "{{temperature}}",
        }


class OpenAIEmbeddings(OpenAIChat):
    """An endpoint that serves embeddings only (its models are embeddings models)."""

    key = "openai-embeddings"
    label = "OpenAI embeddings"
    suffixes = ("/embeddings",)
    path = ""
    streams = False

    def default_template(self) -> dict:
        return {"model": "{{model}}", "input": "{{input}}"}


class AnthropicMessages(Adapter):
    key = "anthropic-messages"
    label = "Anthropic messages"
    suffixes = ("/messages",)
    path = "/messages"
    embeddings_path = ""
    VERSION = "2023-06-01"
    wire = anthropic
    streams = True
    prefill = True
    default_max_tokens = anthropic.DEFAULT_MAX_TOKENS

    def stream_body(self, body: Any) -> Any:
        return dict(body, stream=True) if isinstance(body, dict) else body

    def stream_reader(self, prompt: Prompt):
        return anthropic.StreamReader(prompt)

    def headers(self, config: LLMConfig) -> dict[str, str]:
        return {"anthropic-version": self.VERSION}

    def tap(self, scrubber, model: str):
        return anthropic_door.Tap(scrubber, model)

    def default_template(self) -> dict:
        return {
            "model": "{{model}}",
            "system": "{{system_prompt}}",
            "messages": [{"role": "user", "content": "{{user_prompt}}"}],
            "max_tokens": "{{max_tokens}}",
            "temperature": "{{temperature}}",
        }


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
        what = "embeddings" if config.kind == "embeddings" else "chat/completions"
        return f"{config.endpoint.rstrip('/')}/openai/deployments/{deployment}/{what}?{query}"

    def models_url(self, config: LLMConfig) -> str | None:
        return None

    def default_template(self) -> dict:
        return {
            "messages": "{{messages}}",
            "max_tokens": "{{max_tokens}}",
            "temperature": "{{temperature}}",
        }

    def write(self, config: LLMConfig, prompt: Prompt) -> Any:
        # Azure picks the model by deployment in the URL, not by a body field.
        if config.request_template is not None:
            return template.write_request(config, prompt)
        return openai_chat.write_request(config, prompt, azure=True)


class CustomTemplate(Adapter):
    key = "custom"
    label = "Custom JSON template"
    wire = template

    def normalize(self, endpoint: str) -> tuple[str, list[str]]:
        return endpoint.strip(), []

    def url(self, config: LLMConfig) -> str:
        return config.endpoint

    def models_url(self, config: LLMConfig) -> str | None:
        return None

    def write(self, config: LLMConfig, prompt: Prompt | EmbeddingsInput) -> Any:
        _check_kind(config, prompt)
        return template.write_request(config, prompt)


ADAPTERS: dict[str, Adapter] = {
    a.key: a
    for a in (
        OpenAIChat(),
        OpenAICompletions(),
        OpenAIEmbeddings(),
        AnthropicMessages(),
        AzureOpenAI(),
        CustomTemplate(),
    )
}
# Protocols whose servers speak OpenAI's chat format: a call in that format is forwarded.
OPENAI_SHAPED = {"openai-chat", "azure-openai"}
# Protocols an embeddings model may use (besides a custom template).
EMBEDDINGS_PROTOCOLS = ("openai-embeddings", "openai-chat", "azure-openai", "custom")


def adapter_for(protocol: str) -> Adapter:
    try:
        return ADAPTERS[protocol]
    except KeyError:
        raise LLMError("config", f"Unknown protocol {protocol!r}.") from None
