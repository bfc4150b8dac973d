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


def create(
    owner, name: str, allowed=None, request=None, routes=(), **limits
) -> tuple[GatewayKey, str]:
    """Return the new key and its plaintext, shown once and never again.

    `allowed`: None for every enabled model and route, else the models the key may call;
    `routes`: with `allowed`, the routes it may call too.
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
        key.routes.set(routes)
    scope = (
        "all models"
        if allowed is None
        else f"{len(allowed)} model(s)" + (f", {len(routes)} route(s)" if routes else "")
    )
    audit.record(request, AuditAction.GATEWAY_KEY_CREATE, key, detail=f"for {owner}: {scope}")
    return key, raw


def authenticate(raw: str) -> GatewayKey | None:
    """Return the live key for a plaintext, or None (unknown, revoked, expired, or its
    owner deactivated). Revoking takes effect on the very next call: each worker keeps
    keys only as long as the shared generation says nothing changed."""
    if not raw or not raw.startswith(PREFIX):
        return None
    hashed = digest(raw)
    key = callcache.remembered(callcache._keys, hashed)
    if key is None:
        with callcache.single_flight(("key", hashed)):
            key = callcache.remembered(callcache._keys, hashed)
            if key is None:
                at = callcache.generation() if callcache.enabled() else ""
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


class Names:
    """What each name means among some models, the same rule for calling and listing:
    a gateway alias first, then a model name that one model has, then
    "Integration/Model", which always names one model."""

    def __init__(self, models):
        self.models = list(models)
        self.aliases = {m.gateway_alias: m for m in self.models if m.gateway_alias}
        self.plain: dict[str, list] = {}
        for m in self.models:
            self.plain.setdefault(m.name, []).append(m)
        self.composite = {f"{m.integration.name}/{m.name}": m for m in self.models}

    def get(self, name: str):
        if name in self.aliases:
            return self.aliases[name]
        same = self.plain.get(name, [])
        if len(same) == 1:
            return same[0]
        return None if same else self.composite.get(name)

    def candidates(self, name: str) -> list[str]:
        """The names to use instead of a name that several models share."""
        same = self.plain.get(name, [])
        return sorted(f"{m.integration.name}/{m.name}" for m in same) if len(same) > 1 else []

    def listing(self) -> dict:
        """One name for each model that resolves to it (and its alias too)."""
        names = {}
        for m in self.models:
            for name in (m.gateway_alias, m.name, f"{m.integration.name}/{m.name}"):
                if name and name not in names and self.get(name) is m:
                    names[name] = m
                    if name != m.gateway_alias:
                        break
        return names


def public_names(models) -> dict[str, CustomModel]:
    """The names apps use for the models: see Names."""
    return Names(models).listing()


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


def _candidates(key: GatewayKey, name: str) -> Names:
    integration, _, model_name = name.rpartition("/")
    matching = Q(gateway_alias=name) | Q(name=name)
    if integration:
        matching |= Q(integration__name=integration, name=model_name)
    return Names(models_for(key).filter(matching))


def _resolve(key: GatewayKey, name: str) -> CustomModel | None:
    at = callcache.generation() if callcache.enabled() else ""
    model = _candidates(key, name).get(name)
    if model is not None:
        callcache.remember(callcache._names, (key.pk, name), model, at)
    return model


def ambiguous(key: GatewayKey, name: str) -> list[str]:
    """For a name that several of the key's models share: the names that tell them apart."""
    if not name or len(name) > 201:
        return []
    return _candidates(key, name).candidates(name)


EDITABLE = ("name", "owner", "rpm", "tpm", "monthly_budget", "expires_at", "store_prompts")


def update(key: GatewayKey, request=None, allowed=None, routes=(), **fields) -> GatewayKey:
    """Change a key's name, owner, scope, limits, budget or expiry; audited with what
    changed, and every worker drops its copy at once. Its secret stays."""
    from integrations import audit
    from integrations.models import AuditAction

    before = _state(key)
    for name, value in fields.items():
        if name in EDITABLE:
            setattr(key, name, value)
    key.all_models = allowed is None
    key.save()
    key.allowed.set(allowed or [])
    key.routes.set(routes if allowed is not None else [])
    callcache.bump()
    after = _state(key)
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    audit.record(request, AuditAction.UPDATE, key, changes)
    return key


def _state(key: GatewayKey) -> dict:
    state = {
        name: str(getattr(key, name)) if getattr(key, name) is not None else "" for name in EDITABLE
    }
    state["models"] = (
        "all" if key.all_models else ", ".join(sorted(m.name for m in key.allowed.all()))
    )
    state["routes"] = ", ".join(sorted(r.name for r in key.routes.all()))
    return state


def spent_this_month(found) -> dict:
    """Each key's cost this month (from the daily totals, as the Usage page counts it)."""
    from django.db.models import Sum

    from integrations.models import UsageDaily

    first = timezone.localdate().replace(day=1)
    rows = UsageDaily.objects.filter(day__gte=first, key__in=[k.pk for k in found])
    return {r["key"]: r["spent"] for r in rows.values("key").annotate(spent=Sum("cost"))}


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

    found = GatewayKey.objects.select_related("owner").prefetch_related("allowed", "routes")
    return found if is_admin(user) else found.filter(owner=user)
