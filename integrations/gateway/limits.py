"""A key's limits: requests and tokens per minute through the one sliding-window limiter,
and a monthly budget in USD held in the shared cache, across workers and hosts.

The budget is reserved before a call (its prompt and its max_tokens, or 1,024 when none
is given, at the model's prices) and settled to the real cost after, so concurrent calls
cannot all slip under the line together: spend overshoots by at most the part of one
call's cost that its reservation did not cover.
"""

from __future__ import annotations

import calendar
import contextlib
from dataclasses import dataclass
from decimal import Decimal

from django.core.cache import cache
from django.db.models import Sum
from django.utils import timezone

from integrations import ratelimit
from integrations.llm.config import Prompt, estimate_tokens
from integrations.models import CustomModel, GatewayKey, UsageRecord

MICRO = Decimal(1_000_000)
RESERVED_COMPLETION = 1024


class Limited(Exception):
    def __init__(self, message: str, retry_after: int, code: str):
        super().__init__(message)
        self.message, self.retry_after, self.code = message, retry_after, code


@dataclass
class Hold:
    """What a call holds against its key until it is settled."""

    key: GatewayKey
    model: CustomModel
    prompt_estimate: int
    token_estimate: int
    reserved_micro: int = 0


def _month_key(key: GatewayKey) -> tuple[str, int]:
    now = timezone.now()
    days = calendar.monthrange(now.year, now.month)[1]
    left = (days - now.day) * 86400 + (86400 - (now.hour * 3600 + now.minute * 60 + now.second))
    return f"gw-spend:{key.pk}:{now:%Y%m}", left


def _spent_micro(key: GatewayKey, cache_key: str, ttl: int) -> None:
    """Seed the month's counter from the usage rows (a cache restart loses nothing)."""
    if cache.get(cache_key) is not None:
        return
    start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spent = UsageRecord.objects.filter(key=key, created_at__gte=start).aggregate(s=Sum("cost"))
    cache.add(cache_key, int((spent["s"] or 0) * MICRO), timeout=ttl + 86400)


def admit(key: GatewayKey, model: CustomModel, prompt: Prompt) -> Hold:
    """Count the call against the key's limits, or raise Limited (nothing counted)."""
    prompt_tokens = estimate_tokens(prompt.text())
    max_tokens = prompt.params.get("max_tokens")
    hold = Hold(key, model, prompt_tokens, prompt_tokens + (max_tokens or 0))
    if key.monthly_budget is not None:
        # Seeding may read the database: first, so that a caller on the event loop (which
        # Django refuses queries) is stopped before anything has been counted.
        cache_key, ttl = _month_key(key)
        _spent_micro(key, cache_key, ttl)
    if key.rpm is not None:
        wait = ratelimit.hit(f"gw-rpm:{key.pk}", 1, key.rpm, 60)
        if wait is not None:
            raise Limited(
                f"This key's limit of {key.rpm} requests a minute is reached.",
                ratelimit.wait_seconds(wait),
                "rate_limit_exceeded",
            )
    if key.tpm is not None:
        wait = ratelimit.hit(f"gw-tpm:{key.pk}", max(1, hold.token_estimate), key.tpm, 60)
        if wait is not None:
            raise Limited(
                f"This key's limit of {key.tpm} tokens a minute is reached.",
                ratelimit.wait_seconds(wait),
                "tokens_limit_exceeded",
            )
    if key.monthly_budget is not None:
        cost = model.cost(prompt_tokens, max_tokens or RESERVED_COMPLETION)
        if cost is None:
            raise Limited(
                f"This key has a budget and {model.name} has no prices, so its spend "
                "cannot be counted. Set the model's prices, or use a key without a budget.",
                0,
                "model_not_priced",
            )
        hold.reserved_micro = max(1, int(cost * MICRO))
        total = cache.incr(cache_key, hold.reserved_micro)
        if total > key.monthly_budget * MICRO:
            cache.decr(cache_key, hold.reserved_micro)
            raise Limited(
                f"This key's monthly budget of ${key.monthly_budget} is spent.",
                ttl,
                "budget_exceeded",
            )
    return hold


def settle(hold: Hold, prompt_tokens: int, completion_tokens: int, cost: Decimal | None):
    """After the call: tokens beyond the estimate count, and the budget holds the real cost."""
    if hold.key.tpm is not None:
        extra = prompt_tokens + completion_tokens - hold.token_estimate
        ratelimit.charge(f"gw-tpm:{hold.key.pk}", extra, 60)
    if hold.reserved_micro:
        cache_key, _ = _month_key(hold.key)
        delta = int((cost or 0) * MICRO) - hold.reserved_micro
        with contextlib.suppress(ValueError):  # the counter expired at the month's turn
            cache.incr(cache_key, delta)
