"""What each kind of rule finds firing now: {subject: (title, detail)}.

A subject names one thing one incident is about ("key:<id>:202612:80", "model:<id>"), so a
rule over every model opens one incident per failing model, and a budget one per level
crossed each month. Everything is read from where the console keeps the truth: the
daily totals (as the keys list and Usage count spend), the models' test badges, the
shared cooldown records, and the last 15 minutes of usage rows.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from integrations.gateway import cooldowns, keys
from integrations.models import (
    AlertKind,
    CustomModel,
    GatewayKey,
    RouteTarget,
    TestStatus,
    UsageDaily,
    UsageRecord,
)

LEVELS = (50, 80, 100)  # percent of a budget
WINDOW = timedelta(minutes=15)


def firing(rule) -> dict[str, tuple[str, str]]:
    return KINDS[rule.kind](rule)


def _money(value) -> str:
    return f"${Decimal(value):,.2f}"


def _levels(subject: str, name: str, spent: Decimal, budget: Decimal) -> dict:
    month = timezone.localdate().strftime("%Y%m")
    found = {}
    for level in LEVELS:
        if budget > 0 and spent * 100 >= budget * level:
            share = math.floor(spent * 100 / budget)
            title = f"{name} has used {share}% of its {_money(budget)} monthly budget (crossed {level}%)"
            detail = f"Spent this month: {_money(spent)} of {_money(budget)}."
            found[f"{subject}:{month}:{level}"] = (title, detail)
    return found


def key_budget(rule) -> dict:
    found = GatewayKey.objects.filter(revoked_at__isnull=True, monthly_budget__isnull=False)
    if rule.key_id is not None:
        found = found.filter(pk=rule.key_id)
    found = list(found)
    spent = keys.spent_this_month(found)
    out = {}
    for key in found:
        out |= _levels(
            f"key:{key.pk}",
            f"Key {key.name!r}",
            spent.get(key.pk) or Decimal(0),
            key.monthly_budget,
        )
    return out


def team_budget(rule) -> dict:
    if rule.amount is None:
        return {}
    first = timezone.localdate().replace(day=1)
    spent = UsageDaily.objects.filter(day__gte=first).aggregate(s=Sum("cost"))["s"] or Decimal(0)
    return _levels("team", "The team", spent, rule.amount)


def _models(rule):
    found = CustomModel.objects.filter(enabled=True).select_related("integration")
    return found.filter(pk=rule.model_id) if rule.model_id is not None else found


def check_failed(rule) -> dict:
    out = {}
    for model in _models(rule).filter(last_test_status=TestStatus.FAILING):
        when = timezone.localtime(model.last_tested_at) if model.last_tested_at else None
        title = f"{model.integration.name} / {model.name} fails its check ({model.last_test_error_kind or 'error'})"
        detail = f"Last tested {when:%Y-%m-%d %H:%M %Z}." if when else ""
        out[f"model:{model.pk}"] = (title, detail)
    return out


def cooldown(rule) -> dict:
    targets = RouteTarget.objects.values_list("model_id", flat=True).distinct()
    models = {m.pk: m for m in _models(rule).filter(pk__in=targets)}
    health, _ = cooldowns.read(list(models))
    now, out = time.time(), {}
    for pk, h in health.items():
        if h.cooling(now):
            until = timezone.localtime(datetime.fromtimestamp(h.until, tz=UTC))
            model = models[pk]
            title = f"Route target {model.integration.name} / {model.name} is cooling down until {until:%H:%M:%S}"
            out[f"cooldown:{pk}"] = (title, f"Last error: {h.error[:300]}" if h.error else "")
    return out


def _recent(rule):
    rows = UsageRecord.objects.filter(
        created_at__gte=timezone.now() - WINDOW, refused=False, model__isnull=False
    ).exclude(error_kind="stopped")
    return rows.filter(model_id=rule.model_id) if rule.model_id is not None else rows


def error_rate(rule) -> dict:
    if rule.threshold is None:
        return {}
    stats = (
        _recent(rule)
        .values("model_id", "model_name")
        .annotate(calls=Count("id"), errors=Count("id", filter=Q(ok=False)))
    )
    out = {}
    for s in stats:
        rate = 100 * s["errors"] / s["calls"]
        if s["calls"] >= rule.min_calls and rate >= rule.threshold:
            title = f"{s['model_name']}: {rate:.0f}% of calls failed in the last 15 minutes"
            detail = f"{s['errors']} of {s['calls']} calls failed (threshold {rule.threshold:g}%)."
            out[f"model:{s['model_id']}"] = (title, detail)
    return out


def latency(rule) -> dict:
    if rule.threshold is None:
        return {}
    values: dict = {}
    names: dict = {}
    rows = _recent(rule).filter(ok=True, latency_ms__isnull=False)
    for pk, name, ms in rows.values_list("model_id", "model_name", "latency_ms").iterator():
        values.setdefault(pk, []).append(ms)
        names[pk] = name
    out = {}
    for pk, found in values.items():
        if len(found) < rule.min_calls:
            continue
        found.sort()
        p95 = found[min(len(found) - 1, math.ceil(0.95 * len(found)) - 1)]
        if p95 >= rule.threshold:
            title = f"{names[pk]}: p95 latency {p95:,} ms over the last 15 minutes"
            detail = f"{len(found)} calls; threshold {rule.threshold:,.0f} ms."
            out[f"model:{pk}"] = (title, detail)
    return out


KINDS = {
    AlertKind.KEY_BUDGET: key_budget,
    AlertKind.TEAM_BUDGET: team_budget,
    AlertKind.CHECK_FAILED: check_failed,
    AlertKind.COOLDOWN: cooldown,
    AlertKind.ERROR_RATE: error_rate,
    AlertKind.LATENCY: latency,
}
