"""OpenTelemetry: a real OTLP/HTTP receiver (protobuf decoded with opentelemetry-proto)
gets one CLIENT span per upstream call with the GenAI attributes, inside a SERVER span
that continues the caller's traceparent, and no secret in any attribute, even with
message content on and an upstream that echoes the key back."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from integrations.gateway import keys
from integrations.llm import tracing
from tests.conftest import CANARY, CANARY_HEADER
from tests.gateway.test_gateway import usage_rows
from tests.upstream import send

pytestmark = pytest.mark.django_db(transaction=True)
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


class Receiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1: every span it was sent, decoded."""

    def __init__(self):
        self.spans: list = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        receiver.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, seconds: float = 10) -> list:
        deadline = time.monotonic() + seconds
        while len(self.spans) < count and time.monotonic() < deadline:
            tracing.flush()
            time.sleep(0.05)
        return self.spans


@pytest.fixture
def receiver(monkeypatch):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    found = Receiver()
    tracing.configure(OTLPSpanExporter(endpoint=f"{found.url}/v1/traces"))
    yield found
    tracing.shutdown()
    found.server.shutdown()


def attributes(span) -> dict:
    out = {}
    for kv in span.attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        out[kv.key] = (
            [v.string_value for v in value.array_value.values]
            if kind == "array_value"
            else getattr(value, kind)
        )
    return out


def echoes_the_key(rec, h):
    """A hostile upstream: its id, model and answer repeat the key it was sent."""
    key = rec.headers.get("Authorization", "").removeprefix("Bearer ")
    body = rec.json()
    reply = {
        "id": f"chatcmpl-{key}", "object": "chat.completion", "created": 1, "model": f"m-{key}",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"your key is {key}"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
    }  # fmt: skip
    if body.get("stream"):
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.end_headers()
        chunk = {"id": reply["id"], "model": reply["model"], "object": "chat.completion.chunk"}
        for data in (
            chunk
            | {
                "choices": [{"index": 0, "delta": {"content": f"key {key}"}, "finish_reason": None}]
            },
            chunk | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            chunk | {"choices": [], "usage": reply["usage"]},
        ):
            h.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
        h.wfile.write(b"data: [DONE]\n\n")
        h.close_connection = True
        return
    send(h, 200, json.dumps(reply).encode(), "application/json")


@pytest.mark.parametrize("stream", [False, True])
def test_a_gateway_call_makes_a_client_span_inside_the_callers_trace(
    receiver, console_server, make_integration, bob, upstream, stream
):
    make_integration(model_id="gpt-test", max_tokens=64)
    upstream.handler = echoes_the_key
    _, raw = keys.create(bob, "app")
    gateway = openai.OpenAI(base_url=f"{console_server.url}/v1", api_key=raw, max_retries=0)
    answer = gateway.chat.completions.create(
        model="Model A",
        messages=[{"role": "user", "content": f"is {CANARY} safe?"}],
        temperature=0.3,
        stream=stream,
        extra_headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-01"},
    )
    if stream:
        list(answer)
    usage_rows(1)
    spans = receiver.wait(2)
    (server,) = [s for s in spans if s.kind == s.SPAN_KIND_SERVER]
    (client,) = [s for s in spans if s.kind == s.SPAN_KIND_CLIENT]
    assert server.trace_id.hex() == TRACE_ID and server.parent_span_id.hex() == PARENT
    assert attributes(server)["http.response.status_code"] == 200
    assert client.trace_id.hex() == TRACE_ID and client.parent_span_id == server.span_id
    assert client.name == "chat gpt-test"
    seen = attributes(client)
    assert seen["gen_ai.operation.name"] == "chat"
    assert seen["gen_ai.provider.name"] == "openai"
    assert seen["gen_ai.request.model"] == "gpt-test"
    assert seen["gen_ai.request.temperature"] == 0.3
    assert seen["gen_ai.response.model"] == "m-••••"  # what the upstream said, scrubbed
    assert seen["gen_ai.response.id"] == "chatcmpl-••••"
    assert seen["gen_ai.response.finish_reasons"] == ["stop"]
    assert seen["gen_ai.usage.input_tokens"] == 7 and seen["gen_ai.usage.output_tokens"] == 5
    assert seen["server.address"] == "127.0.0.1" and seen["server.port"] == upstream.port
    assert "error.type" not in seen
    assert "gen_ai.input.messages" in seen and "gen_ai.output.messages" in seen
    everything = repr([attributes(s) for s in spans]) + repr([s.status.message for s in spans])
    assert CANARY not in everything and CANARY_HEADER not in everything


def test_a_failed_call_has_its_error_type(receiver, live_server, make_integration, bob, upstream):
    from tests.upstream import reply_json

    make_integration(model_id="gpt-test")
    upstream.handler = reply_json({"error": {"message": f"bad key {CANARY}"}}, status=401)
    _, raw = keys.create(bob, "app")
    gateway = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=raw, max_retries=0)
    with pytest.raises(openai.APIStatusError):
        gateway.chat.completions.create(
            model="Model A", messages=[{"role": "user", "content": "x"}]
        )
    spans = receiver.wait(2)
    (client,) = [s for s in spans if s.kind == s.SPAN_KIND_CLIENT]
    assert attributes(client)["error.type"] == "auth"
    assert client.status.code == client.status.STATUS_CODE_ERROR
    assert CANARY not in repr([attributes(s) for s in spans]) + client.status.message


def test_a_call_outside_the_gateway_is_a_client_span_of_its_own(
    receiver, make_integration, upstream
):
    from integrations import services
    from integrations.llm import client
    from integrations.llm.config import Prompt

    model = make_integration(model_id="gpt-test")
    upstream.handler = echoes_the_key
    client.call(services.target(model.pk).config, Prompt.of(user="ping"))
    (span,) = receiver.wait(1)
    assert span.kind == span.SPAN_KIND_CLIENT and span.parent_span_id == b""
    assert attributes(span)["gen_ai.usage.output_tokens"] == 5


def test_tracing_off_exports_nothing_and_loads_no_sdk(make_integration, upstream):
    from integrations import services
    from integrations.llm import client
    from integrations.llm.config import Prompt

    assert tracing.endpoint() == "" and tracing.tracer() is None
    model = make_integration(model_id="gpt-test")
    upstream.handler = echoes_the_key
    assert client.call(services.target(model.pk).config, Prompt.of(user="ping")).ok
    assert tracing._provider is None and tracing._tracer is None
