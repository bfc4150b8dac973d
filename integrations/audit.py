"""The audit trail: record who did what, with field changes and secrets shown only as "changed"."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.db import models

from integrations.models import AuditAction, AuditEvent
from integrations.secrets import SecretField

# Besides every encrypted field: names that hold secrets in any model.
SECRET_NAMES = {
    "token",
    "password",
    "client_secret",
    "value",
    "auth_token",
    "secret_value",
    "proxy_url",
}


def client_ip(request) -> str | None:
    if request is None:
        return None
    address = request.META.get("REMOTE_ADDR", "")
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            address = forwarded.split(",")[0].strip()
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def snapshot(obj: models.Model, secret_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """Return the object's editable field values, secrets by a marker that never holds them."""
    values: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.primary_key or field.name in ("created_at", "updated_at", "created_by"):
            continue
        value = getattr(obj, field.attname)
        if field.is_relation and value is not None:
            # What a person knows it by (an integration's name), not its id.
            related = getattr(obj, field.name, None)
            value = str(related) if related is not None else str(value)
        if (
            field.name in secret_fields
            or field.name in SECRET_NAMES
            or isinstance(field, SecretField)
        ):
            # A fingerprint of presence only; equal secrets still compare equal in diff().
            values[field.name] = ("secret", hash(str(value)) if value else None)
        elif isinstance(value, str | int | float | bool | type(None) | dict | list):
            values[field.name] = value
        else:
            values[field.name] = str(value)
    return values


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list]:
    """Return {field: [old, new]} for changed fields; secrets as ["changed"]."""
    changes: dict[str, list] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if old is None and _empty(new):  # a new object's blank fields: nothing was set
            continue
        if isinstance(old, tuple) or isinstance(new, tuple):
            changes[name] = ["changed"]
        else:
            changes[name] = [old, new]
    return changes


def _empty(value) -> bool:
    if isinstance(value, tuple):  # a secret's marker: ("secret", fingerprint or None)
        return value[1] is None
    return value in (None, "", [], {})


def record(
    request,
    action: str,
    obj: models.Model | None = None,
    changes: dict | None = None,
    detail: str = "",
    user=None,
    object_type: str = "",
) -> AuditEvent:
    user = user or (getattr(request, "user", None) if request is not None else None)
    if user is not None and not user.is_authenticated:
        user = None
    return AuditEvent.objects.create(
        user=user,
        username=user.get_username() if user else "",
        action=action,
        object_type=object_type or (obj._meta.model_name if obj is not None else ""),
        object_id=str(obj.pk) if obj is not None and obj.pk is not None else "",
        object_repr=str(obj)[:250] if obj is not None else "",
        changes=changes or {},
        detail=detail[:500],
        ip=client_ip(request),
    )


def record_created(request, obj, secret_fields: tuple[str, ...] = ()) -> AuditEvent:
    return record(request, AuditAction.CREATE, obj, diff({}, snapshot(obj, secret_fields)))


def integration_state(integration) -> dict[str, Any]:
    """Return an integration's fields plus its headers, for diffs (secret values by marker)."""
    state = snapshot(integration)
    if integration.pk:
        for header in integration.headers.all():
            value = ("secret", hash(str(header.value))) if header.secret else str(header.value)
            state[f"header {header.name}"] = value
    return state
