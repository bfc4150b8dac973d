"""/metrics as a scraper reads it: behind a bearer token, LiteLLM's names and labels for
every gateway call (refusals included), fallbacks and cooldowns, what keys have left,
and the console's own series."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from integrations.gateway import keys
from tests.gateway import failover
from tests.gateway.test_gateway import usage_rows
from tests.upstream import Upstream

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN = "metrics-token-for-tests"


@pytest.fixture
def scrape(client, settings):
    settings.METRICS_TOKEN = TOKEN

    def read() -> dict:
        """{(name, frozenset(labels)): value} of every sample."""
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain; version=")
        samples = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for s in family.samples:
                samples[(s.name, frozenset(s.labels.items()))] = s.value
        return samples

    return read


def total(samples: dict, name: str, **labels) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def test_metrics_are_off_without_a_token_and_refused_with_a_wrong_one(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_a_call_and_a_refusal_are_counted_with_the_keys_alias_and_hash(
    scrape, live_server, make_integration, bob, upstream
):
    make_integration(price_input_per_mtok="1", price_output_per_mtok="2")
    key, raw = keys.create(bob, "billing-app", rpm=1, monthly_budget=Decimal("5"))
    who = {"api_key_alias": "billing-app", "hashed_api_key": key.digest}
    before = scrape()
    gateway = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=raw, max_retries=0)
    gateway.chat.completions.create(model="Model A", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError):
        gateway.chat.completions.create(
            model="Model A", messages=[{"role": "user", "content": "hi"}]
        )
    usage_rows(2)
    after = scrape()

    def added(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    requests = "litellm_proxy_total_requests_metric_total"
    assert added(requests, requested_model="Model A", status_code="200", user="bob", **who) == 1
    assert added(requests, requested_model="Model A", status_code="429", **who) == 1
    failed = "litellm_proxy_failed_requests_metric_total"
    assert added(failed, exception_status="429", exception_class="rate_limit_exceeded", **who) == 1
    (row,) = [r for r in usage_rows(2) if r.ok]
    assert added("litellm_input_tokens_metric_total", model="Model A", **who) == row.prompt_tokens
    assert (
        added("litellm_output_tokens_metric_total", model="Model A", **who) == row.completion_tokens
    )
    assert added("litellm_spend_metric_total", model="Model A", **who) == pytest.approx(
        float(row.cost)
    )
    assert added("litellm_request_total_latency_metric_count", model="Model A", **who) == 1
    assert added("litellm_llm_api_latency_metric_count", model="Model A", **who) == 1
    assert added("litellm_overhead_latency_metric_count", model="Model A", **who) == 1
    # Read at the scrape: what the key has left, as its next call finds it.
    left = Decimal(5) - row.cost
    assert total(after, "litellm_remaining_api_key_budget_metric", **who) == pytest.approx(
        float(left)
    )
    assert total(after, "litellm_remaining_api_key_requests_for_model", **who) == 0
    assert total(after, "litellm_in_flight_requests") == 0


def test_a_fallback_and_the_cooldown_it_starts_are_counted(scrape, live_server, upstream, bob):
    backup = Upstream().start()
    try:
        world = failover.build(live_server.url, bob, upstream, backup)
        world.targets("A", "B", failures_to_cool=1)
        world.a.handler = failover.error(503)
        before = scrape()
        assert world.ask() == "from model-b"
        usage_rows(1)
        after = scrape()
    finally:
        backup.stop()
    a, b = world.models["A"], world.models["B"]
    fallbacks = "litellm_deployment_successful_fallbacks_total"
    labels = {"requested_model": failover.ROUTE, "fallback_model": b.name}
    assert total(after, fallbacks, **labels) - total(before, fallbacks, **labels) == 1
    cooled = "litellm_deployment_cooled_down_total"
    where = {"model_id": str(a.pk), "exception_status": "503", "api_provider": "openai-chat"}
    assert total(after, cooled, **where) - total(before, cooled, **where) == 1
    state = "litellm_deployment_state"
    assert total(after, state, model_id=str(a.pk), api_base=upstream.url) == 2  # cooling down
    assert total(after, state, model_id=str(b.pk)) == 0
    requests = "litellm_proxy_total_requests_metric_total"
    labels = {"requested_model": failover.ROUTE, "model": b.name}
    assert total(after, requests, **labels) - total(before, requests, **labels) == 1


def test_the_consoles_own_series(scrape, client, make_integration, alice):
    from integrations import callcache

    before = scrape()
    callcache.bump()
    after = scrape()
    assert total(after, "byo_config_changes_total") - total(before, "byo_config_changes_total") == 1
    (generation,) = [
        dict(ls)["generation"] for (n, ls) in after if n == "byo_config_generation_info"
    ]
    assert generation == callcache.generation()
    assert total(after, "byo_experiments", status="queued") == 0
    assert ("byo_usage_queue_depth", frozenset()) in after


def test_every_metric_is_documented_and_the_dashboard_uses_only_real_ones(scrape):
    import json
    import re
    from pathlib import Path

    from prometheus_client import REGISTRY

    from integrations.telemetry.scrape import Collector

    served = {m.name for m in REGISTRY.collect()} | {m.name for m in Collector().collect()}
    served = {n for n in served if n.startswith(("litellm_", "byo_"))}
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    documented = set(re.findall(r"`((?:litellm|byo)_[a-z_]+)`", readme))
    documented = {re.sub(r"_(total|info)$", "", n) for n in documented}
    assert served - documented == set(), "served but not in the README's table"
    dashboard = json.loads((root / "config" / "grafana-dashboard.json").read_text())
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = re.sub(r"by \([^)]*\)", "", target["expr"])  # label names, not metrics
            used |= set(re.findall(r"\b((?:litellm|byo)_[a-z_]+)", expr))
    used = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in used}
    assert used <= served, f"the dashboard queries what is not served: {used - served}"


def test_a_name_no_model_has_is_one_series_and_never_breaks_the_scrape(scrape, client, bob):
    # JSON may carry a lone surrogate, or any name at all: refusals for names that match
    # no model share one series, so callers cannot grow the series without bound.
    from integrations.telemetry import metrics

    name = "litellm_proxy_total_requests_metric_total"
    before = total(scrape(), name, requested_model="(other)")
    _, raw = keys.create(bob, "app")
    for model in ("gpt \\ud800", "made-up-1", "made-up-2"):
        body = '{"model": "' + model + '", "messages": [{"role": "user", "content": "hi"}]}'
        answer = client.post("/v1/chat/completions", body, content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {raw}")  # fmt: skip
        assert answer.status_code in (400, 404)
    samples = scrape()
    assert total(samples, name, requested_model="(other)") == before + 3
    assert not any("made-up" in dict(ls).get("requested_model", "") for (_, ls) in samples)
    # A label no encoding can write is still made writable (key and model names are typed).
    assert metrics.safe(["a \udfff b"]) == ["a ? b"]
