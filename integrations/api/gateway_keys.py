"""/api/v2/gateway-keys: Admins and Editors manage gateway keys (the plaintext once)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import Field, Router, Schema
from ninja.errors import HttpError

from integrations.api.common import require_editor
from integrations.gateway import keys
from integrations.models import CustomModel, GatewayKey, Route
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


def _existing(model, values: list[str], field: str, noun: str) -> list:
    ids = set()
    for value in values:
        try:
            ids.add(uuid.UUID(value))
        except ValueError:
            raise HttpError(422, f"{field}: {value[:40]!r} is not a {noun} id.") from None
    found = list(model.objects.filter(pk__in=ids))
    if len(found) != len(ids):
        raise HttpError(422, f"{field}: every id must be an existing {noun}.")
    return found


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
    allowed, scoped_routes = None, []
    if payload.routes and payload.models is None:
        raise HttpError(422, "routes: pass `models` too (an empty list for routes only).")
    if payload.models is not None:
        allowed = _existing(CustomModel, payload.models, "models", "model")
        scoped_routes = _existing(Route, payload.routes, "routes", "route")
        if not allowed and not scoped_routes:
            raise HttpError(422, "models: name at least one model or route (omit it: all).")
    days = payload.expires_in_days
    key, raw = keys.create(
        owner,
        payload.name,
        allowed=allowed,
        routes=scoped_routes,
        request=request,
        rpm=payload.rpm,
        tpm=payload.tpm,
        monthly_budget=payload.monthly_budget,
        expires_at=timezone.now() + timedelta(days=days) if days else None,
        store_prompts=payload.store_prompts,
    )
    return 201, _out(key) | {"key": raw}


@router.delete("gateway-keys/{key_id}", response={204: None}, summary="Revoke a gateway key")
def revoke_key(request, key_id: uuid.UUID):
    require_editor(request)
    keys.revoke(get_object_or_404(keys.visible(request.user), pk=key_id), request)
    return 204, None
