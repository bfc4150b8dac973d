"""Sandbox runs per user per window, counted in the Django cache (shared across workers)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache


def _count(key: str, cost: int, timeout: int) -> int:
    incr_window = getattr(cache, "incr_window", None)
    if incr_window is not None:  # Redis: one round trip
        return incr_window(key, cost, timeout)
    if cache.add(key, cost, timeout=timeout):
        return cost
    try:
        return cache.incr(key, cost)
    except ValueError:  # expired between add and incr
        cache.set(key, cost, timeout=timeout)
        return cost


def check(user_id, cost: int = 1) -> int | None:
    """Count `cost` runs for the user; return seconds to wait if over the limit, else None."""
    limit, window = settings.SANDBOX_RATE_LIMIT
    now = time.time()
    bucket = int(now // window)
    count = _count(f"sandbox-runs:{user_id}:{bucket}", cost, window + 5)
    if count > limit:
        return max(1, int((bucket + 1) * window - now) + 1)
    return None
