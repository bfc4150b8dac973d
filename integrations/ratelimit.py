"""The one rate limiter: a sliding window counted in the shared cache.

A fixed window lets a burst straddle its boundary: 30 runs at 0:59 and 30 more at
1:01 is 60 inside two seconds against a limit of 30 a minute. Here a window is cut
into SLICES buckets, and a hit counts every bucket that overlaps the last `window`
seconds, plus one more so that the oldest partial slice is counted whole. That can
refuse a little early (by at most one slice) but never lets more than `limit` units
into any `window`-long span, wherever it starts.

Costs are weighted, so the same limiter counts requests (cost 1) and tokens.
On Redis the check and the count are one Lua script, atomic across workers and
hosts; elsewhere (development, tests) a process lock does the same in memory.
"""

from __future__ import annotations

import math
import threading
import time

from django.core.cache import cache

SLICES = 20


def hit(key: str, cost: int, limit: int, window: int, now: float | None = None) -> float | None:
    """Count `cost` units against `limit` per `window` seconds for `key`.

    Returns None when allowed (and counted), else the seconds until the units would
    fit (nothing is counted for a refused hit).
    """
    now = time.time() if now is None else now
    if cost > limit:
        return float(window)
    sliding = getattr(cache, "sliding_window", None)
    if sliding is not None:  # Redis (config.cache): one atomic round trip
        return sliding(f"rate:{key}", cost, limit, window, SLICES, now)
    return _memory.hit(key, cost, limit, window, now)


def charge(key: str, cost: int, window: int, now: float | None = None) -> None:
    """Count units that were used whatever the limit says (tokens known only after a
    call); later hits see them. A negative cost gives units back to the slice of `now`
    (the time they were counted at)."""
    if cost == 0:
        return
    now = time.time() if now is None else now
    sliding = getattr(cache, "sliding_window", None)
    if sliding is not None:
        sliding(f"rate:{key}", cost, 2**53, window, SLICES, now)
    else:
        _memory.hit(key, cost, 2**53, window, now)


def used(key: str, window: int, now: float | None = None) -> int:
    """The units counted for `key` in the last `window` seconds, as the next hit sees
    them (for the metrics: what a key has left), without counting anything."""
    now = time.time() if now is None else now
    peek = getattr(cache, "sliding_peek", None)
    buckets = peek(f"rate:{key}") if peek is not None else cache.get(f"rate:{key}") or {}
    _, current = slice_of(window, now)
    return sum(count for bucket, count in buckets.items() if bucket >= current - SLICES)


def wait_seconds(wait: float) -> int:
    """A wait as the whole seconds a person is told (never 0)."""
    return max(1, math.ceil(wait))


def slice_of(window: float, now: float) -> tuple[float, int]:
    size = window / SLICES
    return size, math.floor(now / size)


def decide(buckets: dict[int, int], cost, limit, window, now) -> float | None:
    """The rule, shared by the memory store (the Lua script in config/cache.py is its
    twin): prune slices that no longer count, then admit or say how long to wait."""
    size, current = slice_of(window, now)
    for b in [b for b in buckets if b < current - SLICES]:
        del buckets[b]
    total = sum(buckets.values())
    if total + cost <= limit:
        buckets[current] = buckets.get(current, 0) + cost
        return None
    running = total
    for b in sorted(buckets):
        running -= buckets[b]
        if running + cost <= limit:
            return (b + SLICES + 1) * size - now
    return float(window)


class _Memory:
    """The development and test store: the process's own cache, under a process lock
    (a local-memory cache is per process anyway)."""

    def __init__(self):
        self.lock = threading.Lock()

    def hit(self, key, cost, limit, window, now):
        with self.lock:
            buckets = cache.get(f"rate:{key}") or {}
            wait = decide(buckets, cost, limit, window, now)
            if wait is None:
                cache.set(f"rate:{key}", buckets, timeout=window * 2)
            return wait


_memory = _Memory()
