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


def test_models_lists_the_route_beside_models(world):
    listed = {m.id: m.owned_by for m in world.client().models.list()}
    assert listed[failover.ROUTE] == "route"
    assert "Target A" in listed and "Target B" in listed


def test_the_messages_door_fails_over_on_a_route(world):
    import anthropic

    world.targets("A", "B")
    world.a.handler = failover.error(503)
    claude = anthropic.Anthropic(base_url=world.url, api_key=world.key, max_retries=0)
    reply = claude.messages.create(
        model=failover.ROUTE, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.content[0].text == "from model-b"
    with claude.messages.stream(
        model=failover.ROUTE, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert "".join(stream.text_stream) == "from model-b"


def test_the_responses_door_fails_over_on_a_route(world):
    world.targets("A", "B")
    world.a.handler = failover.error(503)
    reply = world.client().responses.create(model=failover.ROUTE, input="hi")
    assert reply.output_text == "from model-b"


def test_a_key_scoped_to_other_models_cannot_call_the_route(world):
    from integrations.models import GatewayKey

    world.targets("A", "B")
    world.a.handler = failover.error(503)
    key = GatewayKey.objects.get(name="failover")
    GatewayKey.objects.filter(pk=key.pk).update(all_models=False)
    key.allowed.set([world.models["B"]])
    from integrations import callcache

    callcache.bump()
    import openai

    with pytest.raises(openai.NotFoundError):
        world.ask()
    key.routes.set([world.route])
    callcache.bump()
    assert world.ask() == "from model-b"


def test_a_fallback_is_one_request_against_the_keys_rpm_and_its_whole_cost_is_budgeted(
    console_server, upstream, bob
):
    import openai

    from integrations.models import GatewayKey

    backup = Upstream().start()
    try:
        world = failover.build(console_server.url, bob, upstream, backup, rpm=2)
        world.targets("A", "B")
        world.a.handler = failover.error(503)
        assert world.ask() == "from model-b"
        assert world.ask() == "from model-b"  # two calls, four attempts: two requests
        with pytest.raises(openai.RateLimitError):
            world.ask()
        rows = usage_rows(3)  # two calls, and the refusal as a row of its own
        calls = [r for r in rows if not r.refused]
        assert len(calls) == 2
        assert all(r.ok and r.route == failover.ROUTE and r.fallbacks == 1 for r in calls)
        (refusal,) = [r for r in rows if r.refused]
        assert (refusal.status_code, refusal.error_kind) == (429, "rate_limit_exceeded")
        GatewayKey.objects.filter(name="failover").update(rpm=None, monthly_budget=0)
        from integrations import callcache

        callcache.bump()
        with pytest.raises(openai.RateLimitError) as refused:
            world.ask()
        assert "budget" in str(refused.value).lower()
    finally:
        backup.stop()


def test_a_disabled_target_is_skipped_without_a_call_and_a_route_with_none_left_says_so(world):
    import openai

    from integrations import callcache
    from integrations.models import CustomModel

    world.targets("A", "B")
    CustomModel.objects.filter(pk=world.models["A"].pk).update(enabled=False)
    callcache.bump()
    before = len(world.a.requests)
    assert world.ask() == "from model-b"
    assert len(world.a.requests) == before
    world.targets("A")
    with pytest.raises(openai.InternalServerError) as refused:
        world.ask()
    assert refused.value.status_code == 503
    assert "has no enabled target" in refused.value.body["message"]
