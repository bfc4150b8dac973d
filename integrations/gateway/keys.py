"""Gateway keys: created once, stored hashed, checked on every /v1 call."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from integrations import callcache
from integrations.models import CustomModel, GatewayKey

PREFIX = "sk-byo-"
MAX_PER_MINUTE = 10_000_000  # requests or tokens a minute: the largest limit a key takes
MAX_BUDGET = 10_000_000  # USD a month
MAX_DAYS = 3650
TOUCH_EVERY = timedelta(minutes=1)  # last-used time is written at most this often


def digest(raw: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough to store them safely.
    return hashlib.sha256(raw.encode()).hexdigest()


def create(owner, name: str, allowed=None, request=None, **limits) -> tuple[GatewayKey, str]:
    """Return the new key and its plaintext, shown once and never again.

    `allowed`: None for every enabled model, else the models the key may call.
    `limits`: rpm, tpm, monthly_budget, expires_at, store_prompts.
    """
    from integrations import audit
    from integrations.models import AuditAction

    raw = PREFIX + secrets.token_urlsafe(32)
    key = GatewayKey.objects.create(
        owner=owner,
        name=name,
        prefix=raw[:12],
        digest=digest(raw),
        all_models=allowed is None,
        **limits,
    )
    if allowed is not None:
        key.allowed.set(allowed)
    scope = "all models" if allowed is None else f"{len(allowed)} model(s)"
    audit.record(request, AuditAction.GATEWAY_KEY_CREATE, key, detail=f"for {owner}: {scope}")
    return key, raw


def authenticate(raw: str) -> GatewayKey | None:
    """Return the live key for a plaintext, or None (unknown, revoked, expired, or its
    owner deactivated). Revoking takes effect on the very next call: each worker keeps
    keys only as long as the shared generation counter says nothing changed."""
    if not raw or not raw.startswith(PREFIX):
        return None
    hashed = digest(raw)
    key = callcache.remembered(callcache._keys, hashed)
    if key is None:
        with callcache.single_flight(("key", hashed)):
            key = callcache.remembered(callcache._keys, hashed)
            if key is None:
                at = callcache.generation() if callcache.enabled() else 0
                key = GatewayKey.objects.select_related("owner").filter(digest=hashed).first()
                if key is not None:
                    callcache.remember(callcache._keys, hashed, key, at)
    now = timezone.now()
    if key is None or key.revoked_at is not None or not key.owner.is_active:
        return None
    if key.expires_at is not None and key.expires_at <= now:
        return None
    if key.last_used_at is None or now - key.last_used_at > TOUCH_EVERY:
        # One thread writes it; the others of a burst go on (a burst of threads all
        # writing the same row is a worker's slow first second, on SQLite above all).
        touch = callcache.single_flight(("touch", key.pk))
        if touch.acquire(blocking=False):
            try:
                GatewayKey.objects.filter(pk=key.pk).update(last_used_at=now)
                key.last_used_at = now  # the cached copy too: once a minute per worker
            finally:
                touch.release()
    return key


def models_for(key: GatewayKey):
    """The enabled models of enabled integrations this key may call."""
    models = CustomModel.objects.filter(enabled=True, integration__enabled=True)
    if not key.all_models:
        models = models.filter(pk__in=key.allowed.values("pk"))
    return models.select_related("integration").order_by("integration__name", "name")


def public_names(models) -> dict[str, CustomModel]:
    """The name apps use for each model: its alias, else its catalog name, else (when two
    integrations share a name) "Integration/Model"."""
    models = list(models)
    counts: dict[str, int] = {}
    for m in models:
        counts[m.name] = counts.get(m.name, 0) + 1
    names = {}
    for m in models:
        if m.gateway_alias:
            names[m.gateway_alias] = m
        names[m.name if counts[m.name] == 1 else f"{m.integration.name}/{m.name}"] = m
    return names


def resolve(key: GatewayKey, name: str) -> CustomModel | None:
    """The model `name` means for this key, or None if there is none it may call."""
    if not name or len(name) > 201:
        return None
    found = callcache.remembered(callcache._names, (key.pk, name))
    if found is not None:
        return found
    with callcache.single_flight(("name", key.pk, name)):
        found = callcache.remembered(callcache._names, (key.pk, name))
        return found if found is not None else _resolve(key, name)


def _resolve(key: GatewayKey, name: str) -> CustomModel | None:
    at = callcache.generation() if callcache.enabled() else 0
    integration, _, model_name = name.rpartition("/")
    candidates = models_for(key).filter(
        Q(gateway_alias=name) | Q(name=name) | Q(integration__name=integration, name=model_name)
    )
    model = public_names(candidates).get(name) if candidates else None
    if model is not None:
        callcache.remember(callcache._names, (key.pk, name), model, at)
    return model


def revoke(key: GatewayKey, request=None) -> bool:
    """Revoke a key; the next call with it is refused. Returns False if it was already."""
    from integrations import audit
    from integrations.models import AuditAction

    done = GatewayKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if done:
        callcache.bump()  # an update() sends no signal: every worker drops its copy now
        audit.record(request, AuditAction.GATEWAY_KEY_REVOKE, key)
    return bool(done)


def visible(user):
    """Admins see every key; anyone else the keys they own."""
    from integrations.team.roles import is_admin

    found = GatewayKey.objects.select_related("owner").prefetch_related("allowed")
    return found if is_admin(user) else found.filter(owner=user)
