"""The REST API at /api/v2/, documented at /api/docs (for signed-in users).

Every call authenticates with a personal API token (Authorization: Bearer byo_...)
and acts with its owner's role. Every error is JSON with a "message".
"""

from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import APIKeyHeader, HttpBearer
from pydantic import ValidationError as PydanticValidationError

from integrations.team import tokens

logger = logging.getLogger(__name__)


class TokenAuth(HttpBearer):
    def authenticate(self, request, token):
        user = tokens.authenticate(token)
        if user is not None:
            request.user = user
        return user


class KeyHeaderAuth(APIKeyHeader):
    """The same token as `x-api-key` (Vectara's and LiveAvatar's header)."""

    param_name = "X-API-Key"

    def authenticate(self, request, key):
        return TokenAuth().authenticate(request, key) if key else None


api = NinjaAPI(
    title="BYO-LLM Console API",
    version="2",
    description="Register custom LLMs (the Vectara /v2/llms shape), store secrets, run prompts.",
    auth=[TokenAuth(), KeyHeaderAuth()],
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
    docs_decorator=login_required,
)


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    # Drop the parameter name ninja puts first (e.g. "payload").
    return ".".join(parts[1:] if len(parts) > 1 else parts)


@api.exception_handler(ValidationError)
def validation_error(request, exc: ValidationError):
    errors = [
        {"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid")} for e in exc.errors
    ]
    first = errors[0] if errors else {"field": "", "message": "invalid"}
    message = (
        f"Invalid request: {first['field']}: {first['message']}"
        if first["field"]
        else "Invalid request."
    )
    return api.create_response(request, {"message": message, "errors": errors}, status=422)


@api.exception_handler(PydanticValidationError)
def schema_error(request, exc: PydanticValidationError):
    """A payload built inside an operation (LiveAvatar's shape becomes an integration)
    that breaks a rule: a 422 naming the field, as for the request's own payload."""
    return validation_error(request, ValidationError(exc.errors(include_url=False)))


@api.exception_handler(AuthenticationError)
def authentication_error(request, exc):
    message = (
        "A valid API token is required: send Authorization: Bearer byo_… or x-api-key: byo_… "
        "(create one under API tokens)."
    )
    return api.create_response(request, {"message": message}, status=401)


@api.exception_handler(HttpError)
def http_error(request, exc: HttpError):
    body = {"message": str(exc)}
    if getattr(exc, "error", None):
        body["error"] = exc.error  # a classified upstream error: kind, title, hint, status
    if getattr(exc, "errors", None):
        body["errors"] = exc.errors  # each field's or row's problem
    if getattr(exc, "failing", None):
        body["failing"] = exc.failing  # models a refused change would have broken
    return api.create_response(request, body, status=exc.status_code)


@api.exception_handler(Http404)
def not_found(request, exc):
    return api.create_response(request, {"message": "Not found."}, status=404)


@api.exception_handler(PermissionDenied)
def forbidden(request, exc):
    return api.create_response(request, {"message": str(exc) or "Not allowed."}, status=403)


@api.exception_handler(Exception)
def unexpected_error(request, exc: Exception):
    logger.exception("API error on %s", request.path)
    return api.create_response(request, {"message": "Internal error. It was logged."}, status=500)


api.add_router("/v2/", "integrations.api.llms.router")
api.add_router("/v2/", "integrations.api.secrets.router")
api.add_router("/v2/", "integrations.api.integrations.router")
api.add_router("/v2/", "integrations.api.profiles.router")
api.add_router("/v2/", "integrations.api.gateway_keys.router")
api.add_router("/v2/", "integrations.api.routes.router")
api.add_router("/v2/", "sandbox.api.router")
api.add_router("/v2/", "sandbox.eval_api.router")
