"""/v1/chat/completions: OpenAI's chat format, in and out."""

from __future__ import annotations

from django.http import JsonResponse

from integrations.gateway.doors.base import Door
from integrations.llm.chat import Completion
from integrations.llm.config import CallResult, Forward
from integrations.llm.protocols import OPENAI_SHAPED
from integrations.llm.wires import openai_chat


class OpenAIDoor(Door):
    """/v1/chat/completions: OpenAI's chat format. A call to an OpenAI-shaped upstream
    (without a custom body) is forwarded as the caller sent it."""

    name = "openai-chat"

    def error(self, status, message, type_, code=None, param=None, headers=None) -> JsonResponse:
        type_ = {"authentication_error": "invalid_request_error", "not_found_error": "invalid_request_error",
                 "request_too_large": "invalid_request_error", "overloaded_error": "api_error"}.get(type_, type_)  # fmt: skip
        return self.error_response(
            openai_chat.error_body(message, type_, code, param), status, headers, code or type_
        )

    def read(self, body):
        return openai_chat.read_request(body)

    def forward_body(self, ask, goal, request) -> Forward | None:
        config = goal.config
        if (
            config is None
            or config.protocol not in OPENAI_SHAPED
            or config.request_template is not None
        ):
            return None
        body = dict(ask.body)
        if config.protocol == "azure-openai":
            body.pop("model", None)  # Azure picks the deployment by its URL
        else:
            body["model"] = config.model_id
        for name, value in config.default_params.items():
            if name == "max_tokens" and "max_completion_tokens" in body:
                continue
            body.setdefault(name, value)
        return Forward(body)

    def chunk_text(self, chunk) -> str:
        return openai_chat.chunk_text(chunk)

    def answer(self, plan, result: CallResult, usage, estimated: bool) -> JsonResponse:
        if plan.forward is not None and isinstance(result.raw_json, dict):
            reply = dict(result.raw_json, model=plan.ask.model)
            if estimated:
                reply["usage"] = openai_chat.usage_out(usage, True)
        else:
            completion = Completion(result.message, result.finish, usage)
            reply = openai_chat.write_reply(completion, plan.ask.model, estimated)
        return self.json_reply(reply, estimated)

    def stream_writer(self, plan):
        return OpenAIStream(plan)


class OpenAIStream:
    """A stream to an OpenAI client: the upstream's own chunks when forwarded (its usage
    chunk only if the caller asked for usage), or chunks written from events."""

    def __init__(self, plan):
        self.ask = plan.ask
        self.forwarded = plan.forward is not None
        self.writer = openai_chat.StreamWriter(plan.ask.model, plan.ask.include_usage)
        self.usage_sent = False

    def item(self, item) -> bytes:
        if not isinstance(item, dict):
            return self.writer.event(item)
        if item.get("usage") and not item.get("choices"):
            if not self.ask.include_usage:
                return b""
            self.usage_sent = True
        return openai_chat.sse(item)

    def end(self, result: CallResult, usage, estimated: bool) -> bytes:
        error = ""
        if not result.ok:
            error = f"{result.error.headline} {result.error.hint}".strip()
            if result.finish is None:
                error = f"The answer was cut short before the upstream finished it. {error}"
        if not self.forwarded:
            return self.writer.end(result.finish, usage, estimated, error)
        out = b""
        if error:
            code = "stream_truncated" if result.finish is None else "upstream_error"
            out += openai_chat.sse(openai_chat.error_body(error, "upstream_error", code))
        if self.ask.include_usage and (estimated or not self.usage_sent):
            chunk = {"id": self.writer.id, "object": "chat.completion.chunk", "created": self.writer.created,
                     "model": self.ask.model, "choices": [], "usage": openai_chat.usage_out(usage, estimated)}  # fmt: skip
            out += openai_chat.sse(chunk)
        return out + b"data: [DONE]\n\n"


OPENAI = OpenAIDoor()
