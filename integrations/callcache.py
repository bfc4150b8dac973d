"""A per-process cache of what a call needs: the model row and its decrypted LLMConfig.

Loading them costs a wide three-table query, a headers query and the decryption of
every secret, on every Sandbox run and API chat. Here each worker keeps them, checked
on every use against a generation in the shared cache: any save or delete of an auth
profile, integration, header, model or gateway key sets a new one, so every worker
drops its copy before its next call. Without a shared cache (local memory, i.e. one
process per cache) a worker could not see another worker's change, so caching is off.

A generation is a random token, not a counter: a Redis restart or flush loses the
counter, and a counter started again climbs back through the values workers had cached
(a revoked key answered 200 again once enough changes were made). A token drawn at
random never comes back.
"""

from __future__ import annotations

import contextvars
import functools
import secrets
import threading

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from integrations.llm.config import LLMConfig
from integrations.models import (
    AuthProfile,
    CustomModel,
    GatewayKey,
    Integration,
    IntegrationHeader,
    Route,
    RouteTarget,
)
from integrations.telemetry import metrics

GENERATION_KEY = "llm-config-generation"
MAX_ENTRIES = 2000

_lock = threading.Lock()
_entries: dict[str, tuple[str, CustomModel, LLMConfig]] = {}


def enabled() -> bool:
    return hasattr(cache, "sliding_window")  # the shared Redis backend (config.cache)


_seen: contextvars.ContextVar[dict | None] = contextvars.ContextVar("generation", default=None)


def _new_generation() -> str:
    return secrets.token_hex(8)


def generation() -> str:
    memo = _seen.get()
    if memo is not None and "value" in memo:
        return memo["value"]
    value = cache.get(GENERATION_KEY)
    if value is None:  # a new or restarted cache: a generation no worker has seen
        cache.add(GENERATION_KEY, _new_generation(), timeout=None)
        value = cache.get(GENERATION_KEY)
    value = str(value)
    if memo is not None:
        memo["value"] = value
    return value


async def look_on_loop(also: tuple[str, ...] = ()) -> None:
    """Read this request's generation without blocking the event loop, so the steps that
    follow on the loop find it remembered. A missing counter (a flushed Redis) is left to
    `generation`, which sets it. `also`: more names read in the same round trip (a
    route's health records), kept for this request alone (`looked`)."""
    memo = _seen.get()
    if memo is None or not enabled():
        return
    if not also:
        value = await cache.aget(GENERATION_KEY)
    else:
        value, *more = await cache.aget_raw_many([GENERATION_KEY, *also])
        memo["also"] = dict(zip(also, more, strict=True))
    if value is not None:
        memo["value"] = str(value)


def looked(names: list[str]) -> list | None:
    """The values of `names` read with this request's generation, or None if any was not
    (they are then read now)."""
    memo = _seen.get()
    found = memo.pop("also", None) if memo else None  # once: a later read is a fresh one
    if not found or any(name not in found for name in names):
        return None
    return [found[name] for name in names]


def one_look(view):
    """Read the generation once for the whole request (the gateway asks three times: for
    the key, the model name and the model's configuration); the next request reads again."""

    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def looked_once(request, *args, **kwargs):
            token = _seen.set({})  # the view's threads see it too: they copy the context
            try:
                return await view(request, *args, **kwargs)
            finally:
                _seen.reset(token)

        return looked_once

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        token = _seen.set({})
        try:
            return view(request, *args, **kwargs)
        finally:
            _seen.reset(token)

    return wrapped


def bump() -> None:
    """Start a new generation: every worker's copies are stale from its next call on."""
    cache.set(GENERATION_KEY, _new_generation(), timeout=None)
    metrics.config_changes.inc()
    with _lock:
        _entries.clear()
        _keys.clear()
        _names.clear()


def get(model_pk) -> tuple[CustomModel, LLMConfig] | None:
    if not enabled():
        return None
    entry = _entries.get(str(model_pk))
    if entry is None or entry[0] != generation():
        return None
    return entry[1], entry[2]


def put(model: CustomModel, config: LLMConfig, at_generation: str) -> None:
    if not enabled():
        return
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _entries[str(model.pk)] = (at_generation, model, config)


@receiver([post_save, post_delete], sender=AuthProfile)
@receiver([post_save, post_delete], sender=Integration)
@receiver([post_save, post_delete], sender=IntegrationHeader)
@receiver([post_save, post_delete], sender=CustomModel)
@receiver([post_save, post_delete], sender=GatewayKey)
@receiver([post_save, post_delete], sender=Route)
@receiver([post_save, post_delete], sender=RouteTarget)
@receiver(m2m_changed, sender=GatewayKey.allowed.through)
@receiver(m2m_changed, sender=GatewayKey.routes.through)
def _changed(sender, **kwargs) -> None:
    if enabled():
        _bump_now_and_on_commit()


def _bump_now_and_on_commit() -> None:
    """Inside a transaction a worker could load the old rows after the first bump and
    keep them under the new generation; the bump at commit makes that copy stale too."""
    bump()
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(bump)


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def _user_changed(sender, update_fields=None, **kwargs) -> None:
    """A deactivated owner's gateway keys stop at once (a login's save changes nothing here)."""
    if enabled() and (update_fields is None or "is_active" in update_fields):
        _bump_now_and_on_commit()


# --- gateway keys and the model names they resolve ----------------------------------

_keys: dict[str, tuple[str, object]] = {}
_names: dict[tuple, tuple[str, object]] = {}


def remembered(table: dict, token):
    """A cached value still valid at the current generation, else None."""
    if not enabled():
        return None
    entry = table.get(token)
    if entry is None or entry[0] != generation():
        return None
    return entry[1]


def remember(table: dict, token, value, at_generation: str) -> None:
    if not enabled():
        return
    with _lock:
        if len(table) >= MAX_ENTRIES:
            table.clear()
        table[token] = (at_generation, value)


_flights: dict = {}


def single_flight(token) -> threading.Lock:
    """A lock per thing being loaded: when a burst of threads all miss the cache at once
    (a worker's first burst), one loads it and the others wait for its copy instead of
    each running the same queries."""
    with _lock:
        lock = _flights.get(token)
        if lock is None:
            if len(_flights) >= MAX_ENTRIES:
                _flights.clear()
            lock = _flights[token] = threading.Lock()
    return lock
