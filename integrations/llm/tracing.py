"""OpenTelemetry spans for upstream calls, after the GenAI semantic conventions.

On only when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set: spans then go
over OTLP/HTTP in batches, from a thread. Off, `client_span` returns None at its first
line and nothing else runs: no SDK is imported.

Every upstream call comes through the one client (integrations/llm/client.py), so the
Test button, the Sandbox, evaluations and the gateway each get one CLIENT span per call,
named "{gen_ai.operation.name} {gen_ai.request.model}". Message content is recorded only
when OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true, and then scrubbed of the
call's secrets, as every other value an upstream sends is.
"""

from __future__ import annotations

import json
import os
import threading
from urllib.parse import urlsplit

_lock = threading.Lock()
_tracer = None  # the SDK's tracer once configured; None when tracing is off
_provider = None
_checked = False

# gen_ai.provider.name by protocol (the convention's well-known values where one fits).
PROVIDERS = {
    "openai-chat": "openai",
    "openai-completions": "openai",
    "openai-embeddings": "openai",
    "anthropic-messages": "anthropic",
    "azure-openai": "azure.ai.openai",
}
# The sampling parameters the convention names, as the neutral prompt holds them.
REQUEST_PARAMS = {
    "max_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "seed": "gen_ai.request.seed",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
}
VALUE_LIMIT = 200  # characters of an upstream's id or model name kept


def endpoint() -> str:
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", ""
    )


def tracer():
    """The tracer, configured on first use in this process (a forked worker makes its
    own exporter thread), or None when tracing is off."""
    global _checked
    if _checked:
        return _tracer
    with _lock:
        if not _checked:
            if endpoint() and os.environ.get("OTEL_SDK_DISABLED", "").lower() != "true":
                configure()
            _checked = True
    return _tracer


def configure(exporter=None) -> None:
    """Start exporting spans: over OTLP/HTTP to the configured endpoint, or to `exporter`."""
    global _tracer, _provider, _checked
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    service = os.environ.get("OTEL_SERVICE_NAME", "byollm-console")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    # Batches leave every OTEL_BSP_SCHEDULE_DELAY ms (5 s by default), from a thread.
    provider.add_span_processor(BatchSpanProcessor(exporter))
    old, _provider, _tracer = _provider, provider, provider.get_tracer("byollm-console")
    _checked = True
    if old is not None:
        old.shutdown()


def shutdown() -> None:
    """Send what is queued and stop (tests, and a worker that exits)."""
    global _tracer, _provider, _checked
    provider, _provider, _tracer, _checked = _provider, None, None, False
    if provider is not None:
        provider.shutdown()


def flush() -> None:
    if _provider is not None:
        _provider.force_flush()


def capture_content() -> bool:
    return (
        os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").lower() == "true"
    )


def client_span(config, prompt, forward, streamed: bool):
    """Start the CLIENT span of one upstream call (under the current span, the gateway's
    server span when there is one), or None when tracing is off."""
    if (active := tracer()) is None:
        return None
    from opentelemetry.trace import SpanKind

    operation = "embeddings" if config.kind == "embeddings" else "chat"
    model = config.model_id or config.deployment
    attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": PROVIDERS.get(config.protocol, config.protocol),
        "gen_ai.request.model": model,
    }
    try:
        url = urlsplit(config.endpoint)
        attributes["server.address"] = url.hostname or ""
        attributes["server.port"] = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        pass
    params = (
        forward.body if forward is not None and isinstance(forward.body, dict) else prompt.params
    )
    for name, attribute in REQUEST_PARAMS.items():
        value = params.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[attribute] = value
    if isinstance(params.get("max_completion_tokens"), int):  # OpenAI's newer name
        attributes["gen_ai.request.max_tokens"] = params["max_completion_tokens"]
    stop = params.get("stop") or params.get("stop_sequences")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        attributes["gen_ai.request.stop_sequences"] = stop[:16]
    return active.start_span(f"{operation} {model}", kind=SpanKind.CLIENT, attributes=attributes)


def end_client_span(span, result, prompt, scrub) -> None:
    """Close a call's span with what came back; `scrub` masks the call's secrets in any
    value the upstream sent (or, with content on, the conversation)."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    found: dict = {}  # one set_attributes: each call takes the span's lock
    if result.response_model:  # scrubbed with the rest of the result (answers.settle)
        found["gen_ai.response.model"] = result.response_model
    if result.response_id:
        found["gen_ai.response.id"] = result.response_id
    if result.finish_reason:
        found["gen_ai.response.finish_reasons"] = [result.finish_reason]
    usage = result.usage
    if usage.prompt_tokens is not None:
        found["gen_ai.usage.input_tokens"] = usage.prompt_tokens
    if usage.completion_tokens is not None:
        found["gen_ai.usage.output_tokens"] = usage.completion_tokens
    if result.error is not None:
        found["error.type"] = result.error.kind
        span.set_status(Status(StatusCode.ERROR, scrub(result.error.message[:300])))
    if capture_content() and hasattr(prompt, "messages"):
        found["gen_ai.input.messages"] = _messages(prompt.messages, scrub)
        if result.content:  # scrubbed already (answers.settle)
            output = [{"role": "assistant", "parts": [_text(result.content, str)]}]
            found["gen_ai.output.messages"] = json.dumps(output)
        if prompt.system:
            found["gen_ai.system_instructions"] = json.dumps([_text(prompt.system, scrub)])
    span.set_attributes(found)
    span.end()


def abandon_client_span(span, why: str) -> None:
    """A call that ends without a result: the caller stopped reading (`cancelled`)."""
    if span is None or not span.is_recording():
        return
    span.set_attribute("error.type", why)
    span.end()


def _text(text: str, scrub) -> dict:
    """A text part, scrubbed before it is encoded (an escaped secret would not match)."""
    return {"type": "text", "content": scrub(text)}


def _messages(messages, scrub) -> str:
    return json.dumps([{"role": m.role, "parts": [_text(m.text(), scrub)]} for m in messages])
