"""/api/v2/gateway-keys: Admins and Editors manage gateway keys (the plaintext once)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema
from ninja.errors import HttpError, ValidationError

from integrations.api.common import require_editor
from integrations.gateway import keys
from integrations.gateway.forms import GatewayKeyForm
from integrations.models import GatewayKey
from integrations.schemas import Input
from integrations.team.roles import is_admin

router = Router(tags=["gateway keys"])


class GatewayKeyOut(Schema):
    id: str
    name: str
    prefix: str
    owner: str
    models: list[str] | None  # None: every enabled model and route
    routes: list[str]  # route ids, beside `models`
    rpm: int | None
    tpm: int | None
    monthly_budget: float | None
    store_prompts: bool
    expires_at: datetime | None
    revoked: bool
    last_used_at: datetime | None


class GatewayKeyCreated(GatewayKeyOut):
    key: str  # shown this once


class GatewayKeyIn(Input):
    name: str = Field(min_length=1, max_length=100)
    owner: str | None = Field(None, description="Username; Admins only. Default: you.")
    models: list[str] | None = Field(None, max_length=500, description="Model ids; omit: all.")
    routes: list[str] = Field(
        [], max_length=500, description="Route ids it may call too (with `models`)."
    )
    rpm: int | None = Field(None, ge=1, le=keys.MAX_PER_MINUTE)
    tpm: int | None = Field(None, ge=1, le=keys.MAX_PER_MINUTE)
    monthly_budget: Decimal | None = Field(None, ge=0, le=keys.MAX_BUDGET, decimal_places=4)
    expires_in_days: int | None = Field(None, ge=1, le=keys.MAX_DAYS)
    store_prompts: bool = False


def _out(key: GatewayKey) -> dict:
    return {
        "id": str(key.pk),
        "name": key.name,
        "prefix": key.prefix,
        "owner": key.owner.get_username(),
        "models": None if key.all_models else [str(m.pk) for m in key.allowed.all()],
        "routes": [] if key.all_models else [str(r.pk) for r in key.routes.all()],
        "rpm": key.rpm,
        "tpm": key.tpm,
        "monthly_budget": float(key.monthly_budget) if key.monthly_budget is not None else None,
        "store_prompts": key.store_prompts,
        "expires_at": key.expires_at,
        "revoked": key.revoked_at is not None,
        "last_used_at": key.last_used_at,
    }


_FIELDS = {"allowed": "models", "all_models": "models", "__all__": "models"}


@router.get("gateway-keys", response=list[GatewayKeyOut], summary="List gateway keys")
def list_keys(request):
    require_editor(request)
    return [_out(k) for k in keys.visible(request.user)]


@router.post("gateway-keys", response={201: GatewayKeyCreated}, summary="Create a gateway key")
def create_key(request, payload: GatewayKeyIn):
    require_editor(request)
    owner = request.user
    if payload.owner and payload.owner != request.user.get_username():
        if not is_admin(request.user):
            raise HttpError(403, "Only Admins create keys for someone else.")
        owner = get_user_model().objects.filter(username=payload.owner, is_active=True).first()
        if owner is None:
            raise HttpError(422, f"No active user named {payload.owner!r}.")
    if payload.routes and payload.models is None:
        raise HttpError(422, "routes: pass `models` too (an empty list for routes only).")
    # The console's form validates and writes: one rule for the page and the API.
    data = payload.dict(exclude={"owner", "models", "routes"}) | {
        "owner": owner.pk,
        "all_models": payload.models is None,
        "allowed": payload.models or [],
        "routes": payload.routes if payload.models is not None else [],
    }
    data = {k: v for k, v in data.items() if v is not None and v is not False}
    form = GatewayKeyForm(data, user=request.user)
    if not form.is_valid():
        errors = [
            {"loc": ("body", "payload", _FIELDS.get(name, name)), "msg": str(m)}
            for name, messages in form.errors.items()
            for m in messages
        ]
        raise ValidationError(errors)
    key, raw = form.create(request)
    return 201, _out(key) | {"key": raw}


@router.delete("gateway-keys/{key_id}", response={204: None}, summary="Revoke a gateway key")
def revoke_key(request, key_id: uuid.UUID):
    require_editor(request)
    keys.revoke(get_object_or_404(keys.visible(request.user), pk=key_id), request)
    return 204, None
