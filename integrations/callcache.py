"""A per-process cache of what a call needs: the model row and its decrypted LLMConfig.

Loading them costs a wide three-table query, a headers query and the decryption of
every secret, on every Sandbox run and API chat. Here each worker keeps them, checked
on every use against a generation number in the shared cache: any save or delete of
an auth profile, integration, header or model bumps it, so every worker drops its
copy before its next call. Without a shared cache (local memory, i.e. one process per
cache) a worker could not see another worker's bump, so caching is off there.
"""

from __future__ import annotations

import contextvars
import functools
import threading

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.cache import cache
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from integrations.llm.config import LLMConfig
from integrations.models import (
    AuthProfile,
    CustomModel,
    GatewayKey,
    Integration,
    IntegrationHeader,
)

GENERATION_KEY = "llm-config-generation"
MAX_ENTRIES = 2000

_lock = threading.Lock()
_entries: dict[str, tuple[int, CustomModel, LLMConfig]] = {}


def enabled() -> bool:
    return hasattr(cache, "sliding_window")  # the shared Redis backend (config.cache)


_seen: contextvars.ContextVar[dict | None] = contextvars.ContextVar("generation", default=None)


def generation() -> int:
    memo = _seen.get()
    if memo is not None and "value" in memo:
        return memo["value"]
    value = cache.get(GENERATION_KEY)
    if value is None:
        cache.add(GENERATION_KEY, 1, timeout=None)
        value = cache.get(GENERATION_KEY, 1)
    if memo is not None:
        memo["value"] = int(value)
    return int(value)


async def look_on_loop() -> None:
    """Read this request's generation without blocking the event loop, so the steps that
    follow on the loop find it remembered. A missing counter (a flushed Redis) is left to
    `generation`, which sets it."""
    memo = _seen.get()
    if memo is None or not enabled():
        return
    value = await cache.aget(GENERATION_KEY)
    if value is not None:
        memo["value"] = int(value)


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
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:
        cache.set(GENERATION_KEY, 2, timeout=None)
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


def put(model: CustomModel, config: LLMConfig, at_generation: int) -> None:
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
@receiver(m2m_changed, sender=GatewayKey.allowed.through)
def _changed(sender, **kwargs) -> None:
    if enabled():
        bump()


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def _user_changed(sender, update_fields=None, **kwargs) -> None:
    """A deactivated owner's gateway keys stop at once (a login's save changes nothing here)."""
    if enabled() and (update_fields is None or "is_active" in update_fields):
        bump()


# --- gateway keys and the model names they resolve ----------------------------------

_keys: dict[str, tuple[int, object]] = {}
_names: dict[tuple, tuple[int, object]] = {}


def remembered(table: dict, token):
    """A cached value still valid at the current generation, else None."""
    if not enabled():
        return None
    entry = table.get(token)
    if entry is None or entry[0] != generation():
        return None
    return entry[1]


def remember(table: dict, token, value, at_generation: int) -> None:
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
