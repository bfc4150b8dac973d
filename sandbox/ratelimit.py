"""Sandbox runs per user per window, counted in the Django cache (shared across workers)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache


def check(user_id, cost: int = 1) -> int | None:
    """Count `cost` runs for the user; return seconds to wait if over the limit, else None."""
    limit, window = settings.SANDBOX_RATE_LIMIT
    now = time.time()
    bucket = int(now // window)
    key = f"sandbox-runs:{user_id}:{bucket}"
    cache.add(key, 0, timeout=window + 5)
    try:
        count = cache.incr(key, cost)
    except ValueError:  # evicted between add and incr
        cache.set(key, cost, timeout=window + 5)
        count = cost
    if count > limit:
        return max(1, int((bucket + 1) * window - now) + 1)
    return None
