"""The gateway's front doors: how each reads a request, answers, streams and refuses.

`Door` holds what every door shares, above all what an upstream failure means to the
caller: an upstream's 400 or 422 is the caller's bad request (400, with the upstream's
scrubbed message, and `context_length_exceeded` when that is the cause), so SDKs do not
retry it; an upstream that refuses the console's credentials is the console's problem
(502 upstream_auth); rate limits stay 429; outages are 502, 503 or 504.
"""

from __future__ import annotations

import math

from django.http import JsonResponse

from integrations.llm import answers
from integrations.llm.config import CallResult


class Door:
    name = ""
    kinds = ("chat",)  # the kinds of model this door serves

    def wrong_kind(self, name: str, kind: str) -> JsonResponse:
        if kind == "embeddings":
            message = f"{name[:100]!r} is an embeddings model: call it at /v1/embeddings."
        else:
            message = f"{name[:100]!r} is a chat model: /v1/embeddings serves embeddings models."
        return self.error(400, message, "invalid_request_error", "wrong_model_kind", "model")

    pings = False  # its stream writer sends a ping while an upstream thinks

    def chunk_text(self, chunk) -> str:
        """The text a forwarded chunk adds (for what a cut-off stream had said)."""
        return ""

    def untranslatable(self, ask) -> tuple[str, str] | None:
        """The first field only the upstream's own format could carry, with what to say."""
        if not ask.unknown:
            return None
        name = ask.unknown[0]
        return name, getattr(ask, "why", {}).get(name) or f"`{name}` is not supported."

    def error(self, status, message, type_, code=None, param=None, headers=None) -> JsonResponse:
        raise NotImplementedError

    @staticmethod
    def json_reply(reply: dict, estimated: bool) -> JsonResponse:
        """A whole reply; usage the upstream did not report is marked as estimated."""
        response = JsonResponse(reply)
        if estimated:
            response["X-Usage-Estimated"] = "true"
        return response

    @staticmethod
    def error_response(
        body: dict, status: int, headers: dict | None, code: str = ""
    ) -> JsonResponse:
        """An error body with its status and headers (Retry-After, for one). `code` stays
        on the response (a refusal's usage row says it, whatever the door's shape)."""
        response = JsonResponse(body, status=status)
        response.error_code = code
        for name, value in (headers or {}).items():
            response[name] = value
        return response

    def unauthorized(self) -> JsonResponse:
        return self.error(
            401,
            "Invalid, expired or revoked gateway key. Pass one as Authorization: Bearer sk-byo-… "
            "(or as api-key or x-api-key).",
            "authentication_error",
            "invalid_api_key",
        )

    def not_found(self, name: str, shared: list[str]) -> JsonResponse:
        if shared:
            names = ", ".join(repr(n) for n in shared)
            message = f"The model name {name[:100]!r} is shared by {len(shared)} models: call one of {names}."
        else:
            message = (
                f"The model {name[:100]!r} does not exist, is disabled, or this key may not use it."
            )
        return self.error(404, message, "not_found_error", "model_not_found", "model")

    def limited(self, exc) -> JsonResponse:
        if exc.code == "model_not_priced":
            return self.error(403, exc.message, "permission_error", exc.code)
        headers = {"Retry-After": str(exc.retry_after)}
        return self.error(429, exc.message, "rate_limit_error", exc.code, headers=headers)

    def upstream_error(self, result: CallResult) -> JsonResponse:
        error = result.error
        said = f" The upstream said: {error.upstream_message}" if error.upstream_message else ""
        if error.kind == "unsupported":
            return self.error(
                400,
                error.message,
                "invalid_request_error",
                "unsupported_parameter",
                error.param or None,
            )
        if error.kind in ("bad_request", "too_large"):
            code = (
                "context_length_exceeded"
                if answers.context_exceeded(error)
                else "upstream_bad_request"
            )
            message = f"The model refused the request ({error.status}).{said}"
            return self.error(400, message, "invalid_request_error", code)
        if error.kind in ("auth", "forbidden"):
            message = (
                f"The model's upstream refused the console's credentials ({error.status}): "
                "an Editor must fix its auth profile. This is not a problem with your key."
            )
            return self.error(502, message, "api_error", "upstream_auth")
        status = {"rate_limited": 429, "timeout": 504}.get(error.kind, 502)
        if error.status in (503, 529):
            status = 503
        message = f"{error.headline} {error.hint}{said}"
        type_ = (
            "rate_limit_error"
            if status == 429
            else ("overloaded_error" if status == 503 else "api_error")
        )
        wait = max(1, math.ceil(error.retry_after or 1))
        headers = {"Retry-After": str(wait)} if status in (429, 503) else None
        return self.error(status, message, type_, f"upstream_{error.kind}", headers=headers)
