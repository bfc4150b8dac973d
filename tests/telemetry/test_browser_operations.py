"""The operator's screens in Chromium at 390 and 1280 px, with axe: Usage with one day
of data (every chart drawn, each with its table, the refusals view), editing a key, and
the Alerts page."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from integrations.gateway import metering
from integrations.models import AlertRule, GatewayKey, UsageRecord
from tests.conftest import log_in
from tests.test_browser_every_page import DESKTOP, PHONE, overflow, serious

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def one_day(objects):
    """Today's calls only: two answered, one failed, two refused."""
    key, model = objects["gateway_key"], objects["model"]
    now = timezone.now()
    rows = [
        UsageRecord(created_at=now, source="gateway", key=key, user=key.owner, model=model,
                    model_name=model.name, prompt_tokens=30, completion_tokens=12,
                    cost=Decimal("0.00004"), latency_ms=latency, ok=ok, status_code=200 if ok else 502,
                    error_kind="" if ok else "server_error")
        for ok, latency in ((True, 240), (True, 900), (False, 1500))
    ] + [
        UsageRecord(created_at=now, source="gateway", key=key, user=key.owner, model_name=model.name,
                    ok=False, refused=True, status_code=429, error_kind="rate_limit_exceeded")
        for _ in range(2)
    ]  # fmt: skip
    metering.write(rows)
    return rows


def test_usage_with_one_day_of_data_draws_every_chart_with_its_table(
    page, objects, one_day, artifacts
):
    log_in(page, "alice", "pw-alice-123")
    page.wait_for_url("**/")
    problems = []
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        page.goto("/usage/?range=7")
        charts = page.locator("figure.chart-card")
        assert charts.count() == 6
        for chart in charts.all():
            svg = chart.locator("svg.chart")
            box = svg.bounding_box()
            assert box["width"] > 200 and box["height"] > 100
            # One day still draws: a bar with height, or a dot.
            marks = svg.locator("rect.bar[height]:not([height='0.0']), circle.dot")
            title = chart.locator("h2").inner_text()
            assert marks.count() >= 1, f"{title}: nothing drawn at {size['width']} px"
        # Three calls at $0.00004: the cost axis keeps the digits that tell them apart.
        ticks = page.locator("figure.chart-card").nth(2).locator("text.tick").all_text_contents()
        assert "$0.000120" in ticks, ticks
        page.locator("details.chart-table summary").first.click()
        table = page.locator("figure.chart-card").first.locator("table")
        assert table.is_visible()
        assert timezone.localdate().isoformat() in table.inner_text()
        if size is PHONE:
            assert overflow(page) <= 0
        problems += [f"usage at {size['width']}: {v}" for v in serious(page)]
        page.screenshot(path=str(artifacts / f"usage-one-day-{size['width']}.png"), full_page=True)
    page.get_by_label("Calls").select_option("refused")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**show=refused**")
    assert page.locator("dl.totals dd").all_text_contents() == ["2"]
    reasons = page.locator("table", has=page.get_by_role("columnheader", name="Reason"))
    assert "rate_limit_exceeded" in reasons.inner_text() and "429" in reasons.inner_text()
    problems += [f"refused view: {v}" for v in serious(page)]
    assert not problems, "\n".join(problems)


def test_a_key_is_edited_from_the_keys_list(page, objects):
    key = objects["gateway_key"]
    log_in(page, "alice", "pw-alice-123")
    page.wait_for_url("**/")
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        page.goto("/gateway/keys/")
        page.get_by_role("link", name=f"Edit {key.name}").click()
        assert not serious(page)
    page.get_by_label("Name").fill("Support bot v2")
    page.get_by_label("Requests per minute").fill("30")
    page.get_by_label("Monthly budget (USD)").fill("12.5")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/gateway/keys/")
    row = page.locator("tr", has_text="Support bot v2")
    assert "30 req/min · $12.50/month" in row.inner_text()
    assert "$0.00 ($12.50 left)" in row.inner_text()
    key = GatewayKey.objects.get(pk=key.pk)
    assert key.name == "Support bot v2" and key.rpm == 30 and key.monthly_budget == Decimal("12.5")


def test_an_admin_adds_an_alert_rule_and_sees_what_was_sent(page, objects, artifacts):
    log_in(page, "alice", "pw-alice-123")
    page.wait_for_url("**/")
    page.locator("summary", has_text="Admin").click()  # the Admin's pages fold into a menu
    page.get_by_role("link", name="Alerts").first.click()
    page.wait_for_url("**/alerts/")
    assert (
        "Local / Model A fails its check (auth)"
        in page.locator("table", has_text="Since").inner_text()
    )
    sent = page.locator("table", has_text="Result").inner_text()
    assert "failed after 3 tries: The webhook answered 500." in sent
    assert "secret" not in page.content().split("<main")[1]  # the webhook's path is never shown
    page.get_by_label("Name").fill("Slow models")
    page.get_by_label("Kind").select_option("latency")
    page.get_by_label("Threshold").fill("4000")
    page.get_by_label("Email recipients").fill("ops@example.com")
    page.get_by_role("button", name="Add rule").click()
    page.wait_for_url("**/alerts/")
    assert "Slow models" in page.locator("table", has_text="Recipients").inner_text()
    assert AlertRule.objects.get(name="Slow models").threshold == 4000
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        page.goto("/alerts/")
        assert not serious(page)
        if size is PHONE:
            assert overflow(page) <= 0
        page.screenshot(path=str(artifacts / f"alerts-{size['width']}.png"), full_page=True)
