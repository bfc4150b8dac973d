"""Adapters against recorded provider payloads; endpoint normalization."""

from __future__ import annotations

import pytest

from integrations.llm.config import AuthConfig, Header, LLMConfig, Prompt, ResponsePaths
from integrations.llm.preview import build_request, preview_request
from integrations.llm.protocols import adapter_for
from integrations.llm.wires.template import parse as parse_template
from integrations.llm.wires.template import render as render_template
from tests.conftest import typed

PROMPT = Prompt.of(system="Be brief.", user="Hi", params={"max_tokens": 50, "temperature": 0.2})

OPENAI_REPLY = {
    "id": "chatcmpl-abc",
    "object": "chat.completion",
    "created": 1713867000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there!", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 30,
        "completion_tokens": 55,
        "total_tokens": 85,
        "prompt_tokens_details": {"cached_tokens": 0},
    },
    "system_fingerprint": "fp_0ba0d124f1",
}
ANTHROPIC_REPLY = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-7-sonnet-20250219",
    "content": [{"type": "text", "text": "Hello!"}, {"type": "text", "text": " How can I help?"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 6},
}
AZURE_REPLY = {
    "choices": [
        {
            "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}},
            "finish_reason": "length",
            "index": 0,
            "message": {"content": "Azure says hi", "role": "assistant"},
        }
    ],
    "created": 1724000000,
    "id": "chatcmpl-9x",
    "model": "gpt-4o-2024-05-13",
    "object": "chat.completion",
    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
    "usage": {"completion_tokens": 10, "prompt_tokens": 20, "total_tokens": 30},
}
GEMINI_REPLY = {
    "choices": [
        {
            "finish_reason": "stop",
            "index": 0,
            "message": {"content": "Gemini here", "role": "assistant"},
        }
    ],
    "created": 1740000000,
    "model": "gemini-2.0-flash",
    "object": "chat.completion",
    "usage": {"completion_tokens": 4, "prompt_tokens": 9, "total_tokens": 13},
}
COMPLETIONS_REPLY = {
    "choices": [{"text": "legacy text", "index": 0, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
}


def config(**kwargs) -> LLMConfig:
    base = {"endpoint": "https://api.example.com/v1", "model_id": "m-1"}
    base.update(kwargs)
    return typed(LLMConfig(**base))


def parse(protocol: str, data, cfg):
    """Read a reply the way the client does: (text, unified finish reason, usage)."""
    completion = adapter_for(protocol).read(data, cfg, PROMPT)
    finish = completion.finish.reason if completion.finish else ""
    return completion.message.text(), finish, completion.usage


def test_it_parses_openai_chat_reply_and_usage():
    content, finish, usage = parse("openai-chat", OPENAI_REPLY, config())
    assert content == "Hello there!"
    assert finish == "stop"
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (30, 55, 85)


def test_it_reports_usage_as_not_reported_when_missing():
    reply = {k: v for k, v in OPENAI_REPLY.items() if k != "usage"}
    _, _, usage = parse("openai-chat", reply, config())
    assert usage.reported is False


def test_it_parses_anthropic_input_and_output_tokens():
    content, finish, usage = parse("anthropic-messages", ANTHROPIC_REPLY, config())
    assert content == "Hello! How can I help?"
    assert finish == "stop"
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 6, 18)


def test_it_builds_anthropic_request_with_system_and_version_header():
    cfg = config(
        protocol="anthropic-messages",
        endpoint="https://api.anthropic.com/v1",
        auth=AuthConfig(kind="header", header_name="x-api-key", token="sk-ant-xyz123456789"),
    )
    url, headers, body, _ = build_request(cfg, Prompt.of("sys", "hello", {"stop": "END"}))
    assert url == "https://api.anthropic.com/v1/messages"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["x-api-key"] == "sk-ant-xyz123456789"
    assert body["system"] == "sys"
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert body["max_tokens"] == 1024
    assert body["stop_sequences"] == ["END"]


def test_it_builds_azure_url_with_deployment_api_version_and_api_key_header():
    cfg = config(
        protocol="azure-openai",
        endpoint="https://res.openai.azure.com",
        deployment="gpt4o-prod",
        api_version="2024-06-01",
        auth=AuthConfig(kind="header", header_name="api-key", token="azure-key-abcdef123456"),
    )
    url, headers, body, _ = build_request(cfg, PROMPT)
    assert url == (
        "https://res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions"
        "?api-version=2024-06-01"
    )
    assert headers["api-key"] == "azure-key-abcdef123456"
    assert "model" not in body
    content, finish, usage = parse("azure-openai", AZURE_REPLY, cfg)
    assert (content, finish, usage.total_tokens) == ("Azure says hi", "length", 30)


def test_it_normalizes_an_azure_deployment_url_to_the_resource():
    base, warnings = adapter_for("azure-openai").normalize(
        "https://res.openai.azure.com/openai/deployments/x/chat/completions?api-version=1"
    )
    assert base == "https://res.openai.azure.com"
    assert warnings


def test_it_parses_gemini_openai_compatible_reply():
    cfg = config(endpoint="https://generativelanguage.googleapis.com/v1beta/openai")
    url, _, _, _ = build_request(cfg, PROMPT)
    assert url == "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"
    content, _, usage = parse("openai-chat", GEMINI_REPLY, cfg)
    assert content == "Gemini here" and usage.total_tokens == 13


def test_it_builds_and_parses_legacy_completions():
    cfg = config(protocol="openai-completions")
    url, _, body, _ = build_request(cfg, PROMPT)
    assert url.endswith("/v1/completions")
    assert body["prompt"] == "Be brief.\n\nHi"
    content, finish, usage = parse("openai-completions", COMPLETIONS_REPLY, cfg)
    assert (content, finish, usage.total_tokens) == ("legacy text", "length", 12)


def test_a_reply_without_choices_is_refused_as_a_wrong_shape():
    with pytest.raises(ValueError, match="no choices"):  # the client calls it bad_response
        parse("openai-chat", {"id": "x", "usage": {}}, config())


CUSTOM_TEMPLATE_TEXT = """{
  "input": {"instruction": "{{system_prompt}}", "question": "Q: {{user_prompt}}"},
  "model_name": "{{model}}",
  "history": {{messages}},
  "params": {"limit": {{max_tokens}}, "temp": "{{temperature}}"}
}"""
CUSTOM_REPLY = {
    "output": {"text": "custom answer", "reason": "done"},
    "meta": {"tokens": {"in": 11, "out": 4}},
}


def test_it_renders_a_custom_template_with_typed_placeholders():
    template = parse_template(CUSTOM_TEMPLATE_TEXT)
    cfg = config(
        protocol="custom",
        endpoint="https://llm.internal/generate",
        request_template=template,
        response_paths=ResponsePaths(
            content="output.text",
            finish_reason="output.reason",
            prompt_tokens="meta.tokens.in",
            completion_tokens="meta.tokens.out",
        ),
    )
    url, _, body, _ = build_request(cfg, Prompt.of("sys", 'say "hi"', {"max_tokens": 20}))
    assert url == "https://llm.internal/generate"
    assert body["input"] == {"instruction": "sys", "question": 'Q: say "hi"'}
    assert body["model_name"] == "m-1"
    assert body["history"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": 'say "hi"'},
    ]
    # A number stays a number; a placeholder with no value drops its key.
    assert body["params"] == {"limit": 20}
    content, finish, usage = parse("custom", CUSTOM_REPLY, cfg)
    assert (content, finish) == ("custom answer", "other")  # "done" is no reason we know
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 4, 15)


def test_it_reads_custom_reply_paths_with_list_indices():
    cfg = config(protocol="custom", response_paths=ResponsePaths(content="results[0].generated"))
    content, _, usage = parse("custom", {"results": [{"generated": "x"}]}, cfg)
    assert content == "x" and not usage.reported


def test_it_fails_with_bad_response_when_the_custom_content_path_is_empty():
    cfg = config(protocol="custom", response_paths=ResponsePaths(content="output.text"))
    with pytest.raises(ValueError, match="output.text"):  # the client calls it bad_response
        parse("custom", {"output": {}}, cfg)


def test_it_rejects_an_invalid_template_with_a_clear_message():
    with pytest.raises(ValueError, match="Not valid JSON"):
        parse_template('{"a": ')


def test_a_template_override_applies_to_openai_protocol_too():
    template = {"model": "{{model}}", "messages": "{{messages}}", "seed": 7}
    cfg = config(request_template=template)
    _, _, body, _ = build_request(cfg, PROMPT)
    assert body == {
        "model": "m-1",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "seed": 7,
    }


def test_render_template_leaves_unknown_placeholders_visible():
    assert render_template({"a": "x {{nope}}"}, {}) == {"a": "x {{nope}}"}


@pytest.mark.parametrize(
    "given, base, warned",
    [
        ("https://api.openai.com/v1", "https://api.openai.com/v1", False),
        ("https://api.openai.com/v1/", "https://api.openai.com/v1", True),
        ("https://api.openai.com/v1/chat/completions", "https://api.openai.com/v1", True),
        ("https://api.openai.com/v1/chat/completions/", "https://api.openai.com/v1", True),
        ("https://api.openai.com/v1/v1", "https://api.openai.com/v1", True),
        ("https://api.openai.com/v1/v1/chat/completions", "https://api.openai.com/v1", True),
        ("  http://localhost:11434/v1  ", "http://localhost:11434/v1", False),
        ("https://openrouter.ai/api/v1", "https://openrouter.ai/api/v1", False),
        ("https://h.io/v1/chat/completions/chat/completions", "https://h.io/v1", True),
    ],
)
def test_it_normalizes_openai_endpoints(given, base, warned):
    got, warnings = adapter_for("openai-chat").normalize(given)
    assert got == base
    assert bool(warnings) is warned
    assert adapter_for("openai-chat").url(config(endpoint=got)) == base + "/chat/completions"


@pytest.mark.parametrize("path", ["/models", "/completions", "/messages"])
def test_another_calls_path_as_the_chat_endpoint_is_named(path):
    got, warnings = adapter_for("openai-chat").normalize(f"https://h.io/v1{path}")
    assert got == f"https://h.io/v1{path}"  # not guessed at: said
    assert any(f"ends in {path}, the path of another API call" in w for w in warnings)


def test_it_warns_when_there_is_no_version_segment():
    _, warnings = adapter_for("openai-chat").normalize("https://example.com/api")
    assert any("/v1" in w for w in warnings)


def test_it_explains_which_warning_applies():
    _, warnings = adapter_for("openai-chat").normalize("https://x.io/v1/v1/chat/completions/")
    text = " ".join(warnings)
    assert "Trailing slash" in text and "/chat/completions" in text and "Doubled" in text


@pytest.mark.parametrize(
    "auth, where",
    [
        (AuthConfig(kind="bearer", token="tok-1234567890abcd"), "Authorization: Bearer"),
        (
            AuthConfig(kind="header", header_name="x-api-key", token="tok-1234567890abcd"),
            "x-api-key",
        ),
        (AuthConfig(kind="query", query_param="key", token="tok-1234567890abcd"), "url"),
        (AuthConfig(kind="body", body_path="auth.token", token="tok-1234567890abcd"), "body"),
        (
            AuthConfig(kind="basic", username="u", password="tok-1234567890abcd"),
            "Authorization: Basic",
        ),
    ],
)
def test_each_auth_kind_is_applied_and_redacted(auth, where):
    cfg = config(auth=auth, headers=(Header("X-Secret", "hdr-secret-0987654321", True),))
    url, headers, body, _ = build_request(cfg, PROMPT)
    sent = f"{url} {headers} {body}"
    if auth.kind == "basic":
        assert headers["Authorization"].startswith("Basic ")
    else:
        assert "tok-1234567890abcd" in sent
    shown = preview_request(cfg, PROMPT)
    text = str(shown)
    assert "tok-1234567890abcd" not in text
    assert "hdr-secret-0987654321" not in text
    assert "••••" in text
    if auth.kind == "bearer":
        assert shown["headers"]["Authorization"] == "Bearer ••••abcd"
    if auth.kind == "basic":
        assert shown["headers"]["Authorization"].startswith("Basic ••••")


# Recorded from LiteLLM 1.x proxying Anthropic: message_start says 0 input tokens and
# message_delta carries the cumulative usage (input and output).
LITELLM_ANTHROPIC_STREAM = [
    {"type": "message_start", "message": {"usage": {"input_tokens": 0, "output_tokens": 0}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"input_tokens": 19, "output_tokens": 3},
    },
    {"type": "message_stop"},
]


def test_anthropic_stream_usage_is_read_cumulatively_as_litellm_sends_it():
    from integrations.llm.chat import Accumulator

    reader, folded = adapter_for("anthropic-messages").stream_reader(PROMPT), Accumulator()
    for event in LITELLM_ANTHROPIC_STREAM:
        for neutral in reader.feed(event):
            folded.feed(neutral)
    usage = folded.usage
    assert (
        folded.text == "Hi" and folded.finish.raw == "end_turn" and folded.finish.reason == "stop"
    )
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (19, 3, 22)


@pytest.mark.parametrize(
    "expires_in, kept",
    [
        (3600, 3240),
        (600, 540),
        (120, 90),
        (60, 30),
        (45, 15),
        (20, 0),
        ("soon", 3000),
        (None, 3000),
    ],
)
def test_oauth_tokens_are_refreshed_before_they_expire(expires_in, kept):
    from integrations.llm.auth import token_ttl

    assert token_ttl(expires_in) == kept
