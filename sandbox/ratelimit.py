"""Sandbox runs per user, through the one sliding-window limiter."""

from __future__ import annotations

from django.conf import settings

from integrations import ratelimit


def check(user_id, cost: int = 1) -> int | None:
    """Count `cost` runs for the user; return whole seconds to wait if over the limit."""
    limit, window = settings.SANDBOX_RATE_LIMIT
    wait = ratelimit.hit(f"sandbox-runs:{user_id}", cost, limit, window)
    return None if wait is None else ratelimit.wait_seconds(wait)
