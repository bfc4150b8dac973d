"""The per-process call cache stays correct: every change reaches the next call."""

from __future__ import annotations

from django.core.cache import cache

from integrations import callcache
from integrations.models import IntegrationHeader
from sandbox import ratelimit, services


def test_a_second_call_needs_no_database_work(
    redis_cache, make_integration, django_assert_num_queries
):
    model = make_integration()
    first = services.target(model.pk)
    with django_assert_num_queries(0):
        second = services.target(model.pk)
    assert second.config == first.config and second.model.pk == model.pk


def test_disabling_a_model_reaches_the_next_call(redis_cache, make_integration):
    model = make_integration()
    assert services.target(model.pk) is not None
    model.enabled = False
    model.save(update_fields=["enabled"])
    assert services.target(model.pk) is None


def test_a_changed_header_reaches_the_next_call(redis_cache, make_integration):
    model = make_integration()
    services.target(model.pk)
    header = IntegrationHeader.objects.get(name="X-Team")
    header.value = "platform"
    header.save()
    headers = {h.name: h.value for h in services.target(model.pk).config.headers}
    assert headers["X-Team"] == "platform"


def test_a_deleted_integration_reaches_the_next_call(redis_cache, make_integration):
    model = make_integration()
    services.target(model.pk)
    model.integration.delete()
    assert services.target(model.pk) is None


def test_another_workers_bump_is_seen(redis_cache, make_integration):
    model = make_integration()
    services.target(model.pk)
    cache.set(callcache.GENERATION_KEY, "another")  # what a save in another worker does
    assert callcache.get(model.pk) is None


def test_without_a_shared_cache_nothing_is_cached(make_integration, django_assert_num_queries):
    model = make_integration()
    services.target(model.pk)
    assert callcache.get(model.pk) is None


def test_the_rate_limit_counts_in_one_redis_round_trip(redis_cache, settings):
    settings.SANDBOX_RATE_LIMIT = (2, 60)
    assert ratelimit.check("u1") is None and ratelimit.check("u1") is None
    assert ratelimit.check("u1") > 0
    assert ratelimit.check("u2") is None
