"""Cooldowns: counted atomically, only ever pushed further out, read fresh in one round
trip, shared by every worker and host (Redis), and the same rules without Redis."""

from __future__ import annotations

import time

import pytest

from integrations.gateway import cooldowns
from integrations.llm.errors import retry_after
from tests.gateway import failover
from tests.upstream import Upstream

RULES = {"threshold": 3, "window": 60, "cooldown": 30, "retry_after": None}


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "redis":
        request.getfixturevalue("redis_cache")
    cooldowns.forget_all()
    return request.param


def test_a_target_cools_down_after_the_failures_the_route_allows(store):
    for _ in range(2):
        assert cooldowns.failed("m1", "server_error: 500", **RULES) == 0
    health = cooldowns.read(["m1"])[0]["m1"]
    assert health.recorded and not health.cooling(time.time()) and "500" in health.error
    until = cooldowns.failed("m1", "server_error: 500", **RULES)
    assert 29 < until - time.time() <= 30.001  # to the millisecond, as Redis keeps it
    assert cooldowns.read(["m1"])[0]["m1"].cooling(time.time())


def test_retry_after_cools_at_once_and_a_later_failure_never_shortens_it(store):
    until = cooldowns.failed("m2", "rate_limited: 429", **(RULES | {"retry_after": 120}))
    assert 119 < until - time.time() <= 120.001
    for _ in range(5):  # short cooldowns counted after it must not bring it closer
        assert cooldowns.failed("m2", "server_error: 500", **(RULES | {"cooldown": 1})) >= until


def test_after_a_cooldown_one_caller_probes_and_success_clears_the_record(store):
    cooldowns.failed("m3", "timeout", **(RULES | {"threshold": 1, "cooldown": 1}))
    time.sleep(1.05)
    health = cooldowns.read(["m3"])[0]["m3"]
    assert health.probing(time.time())
    assert cooldowns.claim_probe("m3", 5) and not cooldowns.claim_probe("m3", 5)
    cooldowns.succeeded("m3")
    health = cooldowns.read(["m3"])[0]["m3"]
    assert not health.recorded and health.until == 0


def test_a_failed_probe_cools_again_and_holds_the_probe_until_then(store):
    cooldowns.failed("m4", "timeout", **(RULES | {"threshold": 1, "cooldown": 1}))
    time.sleep(1.05)
    assert cooldowns.claim_probe("m4", 0.2)
    until = cooldowns.failed("m4", "timeout", **(RULES | {"threshold": 99, "cooldown": 2}))
    assert until > time.time() + 1.5  # half-open failure: a new cooldown whatever the count
    time.sleep(0.3)
    assert not cooldowns.claim_probe("m4", 0.2)  # held to the new cooldown's end


def test_every_choice_reads_the_records_in_one_round_trip(redis_cache, monkeypatch):
    store = cooldowns._store()
    calls = []
    real = store.client.mget
    monkeypatch.setattr(store.client, "mget", lambda keys: calls.append(keys) or real(keys))
    health, notes = cooldowns.read(["a", "b", "c"], ["gw-tool:r:call_1"])
    assert len(calls) == 1 and len(calls[0]) == 10 and set(health) == {"a", "b", "c"}


@pytest.mark.parametrize(
    "headers, seconds",
    [
        ({"retry-after": "30"}, 30),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"x-ratelimit-reset-requests": "6m0s"}, 360),
        ({"x-ratelimit-reset-tokens": "20ms"}, 0.02),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "99999999"}, 3600),
        ({}, None),
    ],
)
def test_an_upstreams_wait_is_read_from_each_header_it_may_use(headers, seconds):
    assert retry_after(headers) == seconds


def test_anthropics_reset_time_is_read_as_a_wait():
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    assert 55 < retry_after({"anthropic-ratelimit-requests-reset": at}) <= 60


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "name", ["4 503 with Retry-After", "15 every target down", "16 flapping target recovers"]
)
def test_the_cooldown_scenarios_hold_on_redis(redis_cache, live_server, upstream, bob, name):
    backup = Upstream().start()
    try:
        world = failover.build(live_server.url, bob, upstream, backup)
        assert failover.SCENARIOS[name](world) == ""
    finally:
        backup.stop()
