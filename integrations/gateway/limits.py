"""A key's limits: requests and tokens per minute through the one sliding-window limiter,
and a monthly budget in USD held in the shared cache, across workers and hosts.

A call reserves, before it is sent, what it could use: its prompt (estimated) and the
max_tokens the upstream will actually receive (the caller's, else the model's default or
its request body's, else what the protocol sends), capped by the model's context window.
A call that names none, on a model that names none, reserves the rest of the model's
context window, or GATEWAY_RESERVE_TOKENS when that is not known either. Tokens per
minute and the budget both count the reservation and are settled to the real usage
after, so concurrent callers cannot slip under the line together: their reservations
alone must fit.

The budget counter lives in the cache under an epoch. When the cache loses it (a Redis
restart, a flush), it is rebuilt from the usage rows under a new epoch; a call reserved
under the old epoch then settles by adding its whole cost, since the rebuilt counter
holds neither its reservation nor (its row not yet written) its cost.
"""

from __future__ import annotations

import calendar
import contextlib
import secrets
import time
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db.models import Sum
from django.utils import timezone

from integrations import ratelimit
from integrations.llm.chat import EmbeddingsInput
from integrations.llm.config import LLMConfig, Prompt, estimate_tokens
from integrations.llm.protocols import max_tokens_sent
from integrations.models import CustomModel, GatewayKey, UsageRecord

MICRO = Decimal(1_000_000)
WINDOW = 60


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
    token_estimate: int  # prompt and the completion it may use: counted per minute
    reserved_micro: int = 0
    epoch: str = ""  # the budget counter's, when the reservation was made
    at: float = 0.0  # when the tokens were counted (the slice a refund goes back to)


def reservation(model: CustomModel, config: LLMConfig | None, prompt: Prompt) -> tuple[int, int]:
    """Return (prompt tokens, completion tokens) a call may use, as estimated before it."""
    prompt_tokens = estimate_tokens(prompt.text())
    if isinstance(prompt, EmbeddingsInput):  # vectors cost input tokens only
        return prompt_tokens, 0
    if config is not None:
        sent = max_tokens_sent(config, prompt)
    else:  # a model whose configuration cannot be read: the call fails before it is sent
        sent = prompt.params.get("max_tokens")
    context = model.context_window
    if sent is None:
        sent = context - prompt_tokens if context else settings.GATEWAY_RESERVE_TOKENS
    elif context:
        sent = min(sent, context - prompt_tokens)  # the upstream cannot answer more
    return prompt_tokens, max(1, sent)


def _month(key: GatewayKey) -> tuple[str, int]:
    """The month's budget pointer key and the seconds the month has left."""
    now = timezone.now()
    days = calendar.monthrange(now.year, now.month)[1]
    left = (days - now.day) * 86400 + (86400 - (now.hour * 3600 + now.minute * 60 + now.second))
    return f"gw-spend:{key.pk}:{now:%Y%m}", left


def _counter(key: GatewayKey) -> tuple[str, str]:
    """The month's spend counter and its epoch, rebuilt from the usage rows when the cache
    has lost it (the only step that reads the database: on the event loop, Django stops
    it before anything has been counted and admission reruns on a thread)."""
    pointer, left = _month(key)
    ttl = left + 86400
    epoch = cache.get(pointer)
    if epoch is not None and cache.get(f"{pointer}:{epoch}") is not None:
        return f"{pointer}:{epoch}", epoch
    # First use this month, a restarted or flushed cache, or an evicted counter: rebuild
    # it from the rows under a new epoch (calls reserved under the old one settle whole).
    # A pointer is set only once its counter exists, and everyone who finds the same one
    # missing agrees on the same next epoch.
    start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spent = UsageRecord.objects.filter(key=key, created_at__gte=start).aggregate(s=Sum("cost"))
    after = f"{pointer}:after:{epoch or 'none'}"
    cache.add(after, secrets.token_hex(6), timeout=ttl)
    epoch = cache.get(after)
    cache.add(f"{pointer}:{epoch}", int((spent["s"] or 0) * MICRO), timeout=ttl)
    cache.set(pointer, epoch, timeout=ttl)
    return f"{pointer}:{epoch}", epoch


def left(key: GatewayKey) -> tuple[Decimal | None, int | None, int | None]:
    """What a key has left now, as its next call would find it: budget this month (USD,
    holds of calls in flight taken out), requests and tokens this minute. None: no limit."""
    budget = requests = tokens = None
    if key.monthly_budget is not None:
        counter, _ = _counter(key)
        budget = key.monthly_budget - Decimal(cache.get(counter) or 0) / MICRO
    if key.rpm is not None:
        requests = max(0, key.rpm - ratelimit.used(f"gw-rpm:{key.pk}", WINDOW))
    if key.tpm is not None:
        tokens = max(0, key.tpm - ratelimit.used(f"gw-tpm:{key.pk}", WINDOW))
    return budget, requests, tokens


def _dollars(micro: int) -> str:
    value = Decimal(micro) / MICRO
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def admit(
    key: GatewayKey, model: CustomModel, prompt: Prompt, config: LLMConfig | None = None
) -> Hold:
    """Count the call against the key's limits, or raise Limited (nothing counted)."""
    prompt_tokens, completion = reservation(model, config, prompt)
    hold = Hold(key, model, prompt_tokens, prompt_tokens + completion, at=time.time())
    counter = epoch = ""
    if key.monthly_budget is not None:
        counter, epoch = _counter(key)  # first: it may need the database (see _counter)
    if key.rpm is not None:
        wait = ratelimit.hit(f"gw-rpm:{key.pk}", 1, key.rpm, WINDOW, hold.at)
        if wait is not None:
            raise Limited(
                f"This key's limit of {key.rpm} requests a minute is reached.",
                ratelimit.wait_seconds(wait),
                "rate_limit_exceeded",
            )
    if key.tpm is not None:
        if hold.token_estimate > key.tpm:
            raise Limited(
                f"This call may use up to {hold.token_estimate} tokens (about {prompt_tokens} "
                f"in the prompt and max_tokens {completion}), over this key's limit of "
                f"{key.tpm} tokens a minute. Send a lower max_tokens.",
                WINDOW,
                "tokens_limit_exceeded",
            )
        wait = ratelimit.hit(f"gw-tpm:{key.pk}", hold.token_estimate, key.tpm, WINDOW, hold.at)
        if wait is not None:
            _refund_request(hold)
            raise Limited(
                f"This key's limit of {key.tpm} tokens a minute is reached.",
                ratelimit.wait_seconds(wait),
                "tokens_limit_exceeded",
            )
    if key.monthly_budget is not None:
        _reserve_budget(hold, counter, epoch, completion)
    return hold


def _reserve_budget(hold: Hold, counter: str, epoch: str, completion: int) -> None:
    key, model = hold.key, hold.model
    cost = model.cost(hold.prompt_estimate, completion)
    if cost is None:
        _refund_tokens(hold)
        raise Limited(
            f"This key has a budget and {model.name} has no prices, so its spend "
            "cannot be counted. Set the model's prices, or use a key without a budget.",
            0,
            "model_not_priced",
        )
    hold.reserved_micro, hold.epoch = max(1, int(cost * MICRO)), epoch
    budget = int(key.monthly_budget * MICRO)
    try:
        total = cache.incr(counter, hold.reserved_micro)
    except ValueError:  # the counter went between reading and counting: count it anew
        counter, hold.epoch = _counter(key)
        total = cache.incr(counter, hold.reserved_micro)
    if total <= budget:
        return
    cache.decr(counter, hold.reserved_micro)
    _refund_tokens(hold)
    _, left = _month(key)
    spent = total - hold.reserved_micro
    if spent >= budget:
        message = f"This key's monthly budget of ${key.monthly_budget} is spent."
    else:
        tokens = f"{hold.prompt_estimate} prompt tokens" + (
            f" and max_tokens {completion}" if completion else ""
        )
        message = (
            f"This call could cost up to {_dollars(hold.reserved_micro)} (about {tokens} at "
            f"{model.name}'s prices); the key has {_dollars(budget - spent)} left this month."
            + (" Send a lower max_tokens." if completion else "")
        )
    raise Limited(message, left, "budget_exceeded")


def _refund_request(hold: Hold) -> None:
    if hold.key.rpm is not None:
        ratelimit.charge(f"gw-rpm:{hold.key.pk}", -1, WINDOW, hold.at)


def _refund_tokens(hold: Hold) -> None:
    """A call refused after its tokens were counted takes them back (and its request)."""
    _refund_request(hold)
    if hold.key.tpm is not None:
        ratelimit.charge(f"gw-tpm:{hold.key.pk}", -hold.token_estimate, WINDOW, hold.at)


def settle(hold: Hold, prompt_tokens: int, completion_tokens: int, cost: Decimal | None):
    """After the call: the minute and the budget count what it really used."""
    if hold.key.tpm is not None:
        extra = prompt_tokens + completion_tokens - hold.token_estimate
        if extra > 0:  # more than reserved (an estimate was low): it counts now
            ratelimit.charge(f"gw-tpm:{hold.key.pk}", extra, WINDOW)
        elif extra < 0 and time.time() - hold.at < WINDOW:  # less: give back the rest
            ratelimit.charge(f"gw-tpm:{hold.key.pk}", extra, WINDOW, hold.at)
    if hold.reserved_micro:
        pointer, _ = _month(hold.key)
        epoch = cache.get(pointer)
        if epoch is None:
            return  # lost with the cache: rebuilt from the rows, this call's among them
        spent = int((cost or 0) * MICRO)
        delta = spent - hold.reserved_micro if epoch == hold.epoch else spent
        with contextlib.suppress(ValueError):  # the counter went: it is rebuilt from rows
            cache.incr(f"{pointer}:{epoch}", delta)
