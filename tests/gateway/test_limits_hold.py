"""Budgets and tokens per minute hold under 50 concurrent callers and across a Redis restart.

The round-3 audit overspent a $0.10 budget 3.6 times with 50 callers: the reservation
used the caller's max_tokens or 1,024, while the upstream received the model's default
of 8,000. Thirty parallel calls used 120 times a 1,000-token minute. A Redis restart with
calls in flight left the budget counter at -$3.75. Here the upstream answers with every
token it was allowed (usage = the max_tokens it received), so a reservation that is not
the true maximum shows at once.
"""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import openai
import pytest
from django.core.cache import cache

from integrations.gateway import keys, limits
from integrations.models import UsageRecord
from tests.gateway.crowd import burst
from tests.gateway.test_gateway import usage_rows
from tests.upstream import openai_reply, send

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "h" * 40  # estimated at 10 tokens, which the upstream reports


def spends_all(delay: float = 0.0):
    """An upstream that uses every token it is allowed (8,000 when it is given none)."""

    def handle(rec, h):
        if delay:
            time.sleep(delay)
        allowed = rec.json().get("max_tokens") or 8000
        usage = {"prompt_tokens": 10, "completion_tokens": allowed, "total_tokens": 10 + allowed}
        send(h, 200, json.dumps(openai_reply("x", usage=usage)).encode(), "application/json")

    return handle


@pytest.fixture
def sdk(console_server):
    def make(raw: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{console_server.url}/v1", api_key=raw, max_retries=0, timeout=30
        )

    return make


@pytest.mark.parametrize("max_tokens", [None, 500])
def test_a_budget_holds_under_fifty_concurrent_callers(
    max_tokens, redis_cache, sdk, make_integration, bob, upstream
):
    # $1/M in, $10/M out: a call the model lets run to its default 8,000 tokens costs $0.08.
    make_integration(max_tokens=8000, price_input_per_mtok="1", price_output_per_mtok="10")
    upstream.handler = spends_all()
    key, raw = keys.create(bob, "app", monthly_budget=Decimal("0.10"))
    params = {} if max_tokens is None else {"max_tokens": max_tokens}
    outcomes = burst(sdk(raw), 50, PROMPT, **params)
    # Every call is metered, refusals included; waiting for all 50 rows also keeps the
    # last writes from running into the next test's database flush.
    assert len(usage_rows(50)) == 50
    spent = sum(r.cost for r in UsageRecord.objects.filter(key=key, refused=False))
    assert outcomes.count("ok") >= 1
    assert spent <= Decimal("0.10"), f"{outcomes.count('ok')} calls spent ${spent}"
    assert all(o.code == "budget_exceeded" for o in outcomes if o != "ok")
    # The counter says what the rows say.
    pointer, _ = limits._month(key)
    counted = cache.get(f"{pointer}:{cache.get(pointer)}")
    assert counted == int(spent * limits.MICRO)


def test_tokens_per_minute_hold_under_thirty_parallel_calls(
    redis_cache, sdk, make_integration, bob, upstream
):
    make_integration(max_tokens=8000)
    upstream.handler = spends_all()
    key, raw = keys.create(bob, "app", tpm=1000)
    # Without max_tokens each call may use 8,010 tokens: none fits in 1,000 a minute.
    outcomes = burst(sdk(raw), 30, PROMPT)
    assert len(usage_rows(30)) == 30
    assert outcomes.count("ok") == 0
    assert "may use up to 8010 tokens" in str(outcomes[0])
    assert "Send a lower max_tokens" in str(outcomes[0])
    # With max_tokens=100 each reserves 110: nine fit, and nine use what they reserved.
    outcomes = burst(sdk(raw), 30, PROMPT, max_tokens=100)
    rows = [r for r in usage_rows(60) if not r.refused]
    used = sum(r.prompt_tokens + r.completion_tokens for r in rows if r.ok)
    assert 1 <= outcomes.count("ok") <= 9
    assert used <= 1000


def test_a_budget_smaller_than_a_call_says_what_the_call_could_cost(
    sdk, make_integration, bob, upstream
):
    make_integration(max_tokens=8000, price_input_per_mtok="1", price_output_per_mtok="10")
    _, raw = keys.create(bob, "tiny", monthly_budget=Decimal("0.0001"))
    with pytest.raises(openai.RateLimitError) as refused:
        sdk(raw).chat.completions.create(
            model="Model A", messages=[{"role": "user", "content": PROMPT}]
        )
    message = str(refused.value)
    assert "is spent" not in message
    assert "could cost up to $0.0800" in message and "has $0.0001 left" in message
    assert upstream.requests == []


def test_a_model_without_max_tokens_reserves_its_context_window(make_integration, bob):
    from integrations import services
    from integrations.llm.config import Prompt

    model = make_integration(context_window=32000)
    goal = services.target(model.pk)
    assert limits.reservation(model, goal.config, Prompt.of(user=PROMPT)) == (10, 31990)
    model.context_window = None
    assert limits.reservation(model, goal.config, Prompt.of(user=PROMPT)) == (10, 4096)
    anthropic = make_integration(name="Claude", protocol="anthropic-messages", context_window=2000)
    config = services.target(anthropic.pk).config
    assert limits.reservation(anthropic, config, Prompt.of(user=PROMPT)) == (10, 1024)
    big = Prompt.of(user=PROMPT, params={"max_tokens": 5000})
    assert limits.reservation(anthropic, config, big) == (10, 1990)


def test_a_redis_restart_with_calls_in_flight_counts_each_call_once(
    private_redis, make_integration, bob, upstream, live_server
):
    make_integration(price_input_per_mtok="1", price_output_per_mtok="10")
    upstream.handler = spends_all(delay=1.0)
    key, raw = keys.create(bob, "app", monthly_budget=Decimal("5"))
    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=raw, max_retries=0, timeout=30)
    outcomes: list = []

    def one():
        client.chat.completions.create(
            model="Model A", messages=[{"role": "user", "content": PROMPT}], max_tokens=1000
        )
        outcomes.append("ok")

    first = [threading.Thread(target=one) for _ in range(5)]
    for t in first:
        t.start()
    time.sleep(0.4)  # all five reserved and waiting on the upstream
    private_redis.restart()
    second = [threading.Thread(target=one) for _ in range(3)]  # these rebuild the counter
    for t in second:
        t.start()
    for t in first + second:
        t.join()
    assert outcomes == ["ok"] * 8
    rows = usage_rows(8)
    spent = sum(r.cost for r in rows)
    pointer, _ = limits._month(key)
    counted = cache.get(f"{pointer}:{cache.get(pointer)}")
    assert counted == int(spent * limits.MICRO)
