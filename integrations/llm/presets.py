"""Provider presets: what to prefill for endpoint, protocol and auth style."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    endpoint: str
    protocol: str = "openai-chat"
    auth_kind: str = "bearer"  # an AuthKind value
    header_name: str = ""
    query_param: str = ""
    example_model: str = ""
    note: str = ""


PRESETS: dict[str, Preset] = {
    p.key: p
    for p in (
        Preset("openai", "OpenAI", "https://api.openai.com/v1", example_model="gpt-4o-mini"),
        Preset(
            "azure-openai",
            "Azure OpenAI",
            "https://YOUR-RESOURCE.openai.azure.com",
            protocol="azure-openai",
            auth_kind="header",
            header_name="api-key",
            example_model="gpt-4o-mini",
            note="Set the deployment name and api-version.",
        ),
        Preset(
            "anthropic",
            "Anthropic",
            "https://api.anthropic.com/v1",
            protocol="anthropic-messages",
            auth_kind="header",
            header_name="x-api-key",
            example_model="claude-3-7-sonnet-20250219",
        ),
        Preset(
            "gemini",
            "Google Gemini (OpenAI-compatible)",
            "https://generativelanguage.googleapis.com/v1beta/openai",
            example_model="gemini-2.0-flash",
        ),
        Preset(
            "mistral", "Mistral", "https://api.mistral.ai/v1", example_model="mistral-small-latest"
        ),
        Preset(
            "groq", "Groq", "https://api.groq.com/openai/v1", example_model="llama-3.1-8b-instant"
        ),
        Preset(
            "openrouter",
            "OpenRouter",
            "https://openrouter.ai/api/v1",
            example_model="openai/gpt-4o-mini",
        ),
        Preset(
            "together",
            "Together",
            "https://api.together.xyz/v1",
            example_model="meta-llama/Llama-3.3-70B-Instruct-Turbo",
        ),
        Preset(
            "deepseek", "DeepSeek", "https://api.deepseek.com/v1", example_model="deepseek-chat"
        ),
        Preset(
            "tgi",
            "Hugging Face TGI",
            "http://localhost:8080/v1",
            example_model="tgi",
            note="TGI serves one model; 'tgi' works as the Model ID.",
        ),
        Preset("vllm", "vLLM", "http://localhost:8000/v1", auth_kind="none"),
        Preset(
            "ollama",
            "Ollama",
            "http://localhost:11434/v1",
            auth_kind="none",
            example_model="llama3.2",
        ),
        Preset("lmstudio", "LM Studio", "http://localhost:1234/v1", auth_kind="none"),
        Preset("llamacpp", "llama.cpp server", "http://localhost:8080/v1", auth_kind="none"),
        Preset("litellm", "LiteLLM proxy", "http://localhost:4000/v1"),
        Preset(
            "custom",
            "Custom (JSON template)",
            "https://",
            protocol="custom",
            auth_kind="none",
            note="Write the request body with placeholders and say where the answer is.",
        ),
    )
}
