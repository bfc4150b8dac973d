"""/v1/embeddings: OpenAI's embeddings format, for the embeddings models a key may use.

The texts go through the same client as every call (the SSRF-checked transport, the
origin-bound secrets), are metered as input tokens and priced at the model's input price
against budgets. Vectors come back as floats or, when asked (the openai SDK's default),
base64 of little-endian float32, encoded here whatever the upstream sent.
"""

from __future__ import annotations

from django.http import JsonResponse

from integrations.gateway.doors.openai import OpenAIDoor
from integrations.llm.config import CallResult
from integrations.llm.wires import openai_embeddings as wire


class EmbeddingsDoor(OpenAIDoor):
    name = "embeddings"
    kinds = ("embeddings",)

    def read(self, body):
        return wire.read_request(body)

    def forward_body(self, ask, goal, request):
        return None

    def answer(self, plan, result: CallResult, usage, estimated: bool) -> JsonResponse:
        reply = wire.write_reply(result.vectors, plan.ask.model, usage, plan.ask.encoding_format)
        return self.json_reply(reply, estimated)

    def stream_writer(self, plan):  # pragma: no cover - an embeddings call never streams
        raise NotImplementedError


EMBEDDINGS = EmbeddingsDoor()
