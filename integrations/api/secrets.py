"""/api/v2/secrets: stored secrets, used by id; values never come back."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError

from integrations import names, writes
from integrations.api.common import _edge, _refused, require_editor
from integrations.llm import inputs
from integrations.models import (
    StoredSecret,
)
from integrations.schemas import Input

router = Router(tags=["secrets"])


class SecretIn(Input):
    secret_name: str = Field(min_length=1, max_length=100)
    secret_type: str = Field("LLM_API_KEY", max_length=40)
    secret_value: str = Field(min_length=1, max_length=20000)
    origins: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Base URLs this secret may be sent to, e.g. https://api.openai.com/v1. "
        "Without any, its first use by the person who stored it binds it.",
    )


class SecretOut(Schema):
    secret_id: str
    secret_name: str
    secret_type: str
    created_at: datetime


def _secret_out(secret: StoredSecret) -> dict:
    return {
        "secret_id": str(secret.pk),
        "secret_name": secret.name,
        "secret_type": secret.secret_type,
        "created_at": secret.created_at,
    }


@router.post(
    "secrets", response={201: SecretOut}, summary="Store a secret; its value is never returned"
)
def create_secret(request, payload: SecretIn):
    require_editor(request)
    if problem := names.taken(StoredSecret, payload.secret_name):
        raise HttpError(409, problem)
    origins = sorted({_edge(inputs.origin, url, field="origins") for url in payload.origins})
    try:
        secret = writes.store_secret(
            name=payload.secret_name,
            secret_type=payload.secret_type,
            value=payload.secret_value,
            origins=origins,
            request=request,
        )
    except writes.Refused as exc:
        raise HttpError(409, exc.message) from exc
    return Status(201, _secret_out(secret))


@router.get("secrets", response=list[SecretOut], summary="List secrets (names only)")
def list_secrets(request):
    require_editor(request)
    return [_secret_out(s) for s in StoredSecret.objects.all()]


@router.delete("secrets/{secret_id}", response={204: None}, summary="Delete a secret")
def delete_secret(request, secret_id: uuid.UUID):
    require_editor(request)
    secret = get_object_or_404(StoredSecret, pk=secret_id)
    users = writes.delete_secret(secret, request)
    if users:
        raise HttpError(409, f"{secret.name} is in use by {'; '.join(users)}; it was not deleted.")
    return Status(204, None)


class SecretRotate(Input):
    secret_value: str = Field(min_length=1, max_length=20000)
    disable_failing: bool = False


@router.patch(
    "secrets/{secret_id}",
    response=SecretOut,
    summary="Rotate a secret: every model using it is tested with the new value first",
)
def rotate_secret(request, secret_id: uuid.UUID, payload: SecretRotate):
    require_editor(request)
    secret = get_object_or_404(StoredSecret, pk=secret_id)
    try:
        writes.rotate_secret(
            secret, payload.secret_value, request, disable_failing=payload.disable_failing
        )
    except writes.Refused as exc:
        raise _refused(exc) from exc
    return _secret_out(secret)


# --- /auth-profiles ------------------------------------------------------------------------------
