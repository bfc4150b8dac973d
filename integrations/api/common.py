"""What every REST operation shares: roles, edge rules as 422s, refusals as answers."""

from __future__ import annotations

import uuid

from django.core.exceptions import PermissionDenied
from ninja.errors import HttpError

from integrations import services, writes
from integrations.llm import inputs
from integrations.llm.config import CallResult
from integrations.llm.errors import LLMError
from integrations.llm.protocols import adapter_for
from integrations.models import (
    AuthProfile,
    StoredSecret,
)
from integrations.secrets import CredentialUnreadable, reveal
from integrations.team.roles import can_edit


def require_editor(request) -> None:
    if not can_edit(request.user):
        raise PermissionDenied(
            "Editors and Admins only: this token's owner may only read and run prompts."
        )


# --- schemas -------------------------------------------------------------------------------


def _secret_value(
    secret_id: uuid.UUID | None, inline: str | None, field: str
) -> tuple[str, StoredSecret | None]:
    """Return the secret's plaintext and, for a secret_id, the stored secret it came from."""
    if secret_id is not None:
        stored = StoredSecret.objects.filter(pk=secret_id).first()
        if stored is None:
            raise HttpError(422, f"Invalid request: {field}.secret_id: no secret with that id.")
        try:
            return reveal(stored.value, f"Secret {stored.name!r}"), stored
        except CredentialUnreadable as exc:
            raise HttpError(409, str(exc)) from exc
    if not inline:
        raise HttpError(422, f"Invalid request: {field}: give the secret inline or as secret_id.")
    return inline, None


def _edge(rule, value, *args, field: str):
    """Run an edge rule of integrations.llm.inputs; a broken rule is a 422 naming the field."""
    try:
        return rule(value, *args)
    except inputs.InputError as exc:
        raise HttpError(422, f"Invalid request: {field}: {exc}") from exc


def _endpoint(uri: str) -> str:
    _edge(inputs.parse_url, uri, "uri", field="uri")
    base, _ = adapter_for("openai-chat").normalize(uri)
    _edge(inputs.parse_url, base, "uri", field="uri")
    return base


def _refused(exc: writes.Refused) -> HttpError:
    """Return the API's answer to a change the write path refused (nothing was written)."""
    if exc.failing:
        error = HttpError(409, f"{exc.message} Nothing was changed.")
        error.failing = [
            {"id": str(m.pk), "name": str(m), "error": r.error.as_dict()} for m, r in exc.failing
        ]
        return error
    if exc.error is not None:
        error = HttpError(400, f"The endpoint test failed: {exc.error.message} {exc.error.hint}")
        error.error = exc.error.as_dict()
        return error
    return HttpError(409, exc.message)


def _unique_profile_name(base: str) -> str:
    name, n = f"{base} auth"[:100], 2
    while AuthProfile.objects.filter(name__iexact=name).exists():
        name, n = f"{base} auth {n}"[:100], n + 1
    return name


def usage_dict(result: CallResult) -> dict:
    usage = result.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "reported": usage.reported,
    }


# --- /secrets ----------------------------------------------------------------------------------


def saved_config(integration, model=None, replacing_auth: bool = False):
    """Return a saved integration's call configuration. A secret that no longer decrypts is
    a 409 with its classified message; a request that replaces the auth leaves the profile
    out, since its secret is not needed."""
    if replacing_auth:
        integration = writes.replace_profile(integration)
    try:
        return services.config_for(integration, model)
    except LLMError as exc:
        raise HttpError(409, exc.message) from exc
