"""The failover matrix (tests/gateway/failover.py) through the openai SDK, under WSGI and
ASGI, and what each call records: the route, every attempt, the fallbacks, the cost."""

from __future__ import annotations

import pytest

from tests.gateway import failover
from tests.gateway.test_gateway import usage_rows
from tests.upstream import Upstream

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(console_server, upstream, bob):
    backup = Upstream().start()
    yield failover.build(console_server.url, bob, upstream, backup)
    backup.stop()


@pytest.mark.parametrize("name", list(failover.SCENARIOS))
def test_failover_scenario(world, name):
    assert failover.SCENARIOS[name](world) == ""


def test_a_fallback_records_the_route_each_attempt_and_the_target_that_answered(world):
    world.targets("A", "B")
    world.a.handler = failover.error(503)
    assert world.ask() == "from model-b"
    (row,) = usage_rows(1)
    assert row.route == failover.ROUTE and row.fallbacks == 1
    assert row.model_id == world.models["B"].pk and row.ok
    assert [(a["model"], a["error_kind"], a["status"]) for a in row.attempts] == [
        ("Up A/Target A", "server_error", 503),
        ("Up B/Target B", "", 200),
    ]
    assert row.cost == world.models["B"].cost(row.prompt_tokens, row.completion_tokens)


def test_a_cut_stream_is_metered_as_failed_with_both_what_it_said(world):
    world.targets("A", "B")
    world.a.handler = failover.reply_sse(["w0 ", "w1 ", "w2 "], break_after=2)
    assert failover._never_clean(world) == ""
    (row,) = usage_rows(1)
    assert not row.ok and row.route == failover.ROUTE and row.completion_tokens > 0
    assert row.attempts[-1]["ok"] is False
