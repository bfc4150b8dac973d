"""/v1/messages: Anthropic's Messages format, in and out, for any model a key may use.

A call to an Anthropic upstream (without a custom body) is forwarded as the caller sent
it: the model name replaced, `anthropic-version` and `anthropic-beta` passed on, and the
answer's blocks (thinking and signatures too) passed back as they came, tapped for
metering and scrubbing. Any other upstream gets the conversation translated.
"""

from __future__ import annotations

from django.http import JsonResponse

from integrations.gateway.doors.base import Door
from integrations.llm import inputs
from integrations.llm.chat import Completion
from integrations.llm.config import CallResult, Forward, estimate_tokens
from integrations.llm.wires.anthropic import door as wire
from integrations.llm.wires.common import stop_list

FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")
ERROR_TYPES = {
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
    "request_too_large", "rate_limit_error", "api_error", "overloaded_error",
}  # fmt: skip


def forwarded_headers(request) -> dict[str, str]:
    """The caller's protocol headers an Anthropic upstream should see (valid ones only)."""
    out = {}
    for name in FORWARDED_HEADERS:
        value = request.headers.get(name, "")
        try:
            if value:
                inputs.check_header_value(value)
                out[name] = value[:1000]
        except inputs.InputError:
            continue
    return out


class AnthropicDoor(Door):
    name = "anthropic-messages"
    pings = True

    def error(self, status, message, type_, code=None, param=None, headers=None) -> JsonResponse:
        if type_ not in ERROR_TYPES:
            type_ = wire.ERROR_TYPES.get(status, "api_error")
        status = wire.STATUS.get(type_, status)
        if param and status == 400:
            message = f"{param}: {message}"
        return self.error_response(wire.error_body(message, type_), status, headers, code or type_)

    def read(self, body):
        return wire.read_request(body)

    def forward_body(self, ask, goal, request) -> Forward | None:
        config = goal.config
        if (
            config is None
            or config.protocol != "anthropic-messages"
            or config.request_template is not None
        ):
            return None
        body = dict(ask.body, model=config.model_id)
        defaults = config.default_params
        for name in ("temperature", "top_p", "top_k"):
            if defaults.get(name) is not None and "thinking" not in body:
                body.setdefault(name, defaults[name])
        if defaults.get("stop"):
            body.setdefault("stop_sequences", stop_list(defaults["stop"]))
        return Forward(body, forwarded_headers(request))

    def chunk_text(self, chunk) -> str:
        delta = chunk.get("delta") if isinstance(chunk, dict) else None
        if isinstance(delta, dict) and delta.get("type") == "text_delta":
            return delta.get("text") if isinstance(delta.get("text"), str) else ""
        return ""

    def answer(self, plan, result: CallResult, usage, estimated: bool) -> JsonResponse:
        if plan.forward is not None and isinstance(result.raw_json, dict):
            reply = dict(result.raw_json, model=plan.ask.model)
            if estimated:
                reply["usage"] = wire.usage_out(usage)
        else:
            completion = Completion(result.message, result.finish, usage)
            reply = wire.write_reply(completion, plan.ask.model)
        return self.json_reply(reply, estimated)

    def stream_writer(self, plan):
        return AnthropicStream(plan)


class AnthropicStream:
    """A stream to an Anthropic client: the upstream's own events when forwarded, or
    events written from the neutral ones; a `ping` while the upstream is quiet."""

    def __init__(self, plan):
        self.forwarded = plan.forward is not None
        self.writer = wire.StreamWriter(plan.ask.model, estimate_tokens(plan.ask.prompt.text()))

    def item(self, item) -> bytes:
        if isinstance(item, dict):
            return wire.sse(item)
        return self.writer.event(item)

    def ping(self) -> bytes:
        if self.forwarded:
            return wire.PING
        return self.writer.opening() or wire.PING

    def end(self, result: CallResult, usage, estimated: bool) -> bytes:
        error = ""
        if not result.ok:
            error = f"{result.error.headline} {result.error.hint}".strip()
            if result.finish is None:
                error = f"The answer was cut short before the upstream finished it. {error}"
        if not self.forwarded:
            return self.writer.end(result.finish, usage, error)
        if not error:
            return b""
        overloaded = result.status_code in (503, 529)
        return wire.sse(wire.error_body(error, "overloaded_error" if overloaded else "api_error"))


ANTHROPIC = AnthropicDoor()
