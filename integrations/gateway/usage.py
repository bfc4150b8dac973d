"""Usage read from the daily totals: per-day series, by model, by key, and CSV rows.

Every function runs one grouped query over UsageDaily, whose size grows with days x
keys x models, not with calls. Percentiles come from the latency buckets, so they are
bucket bounds (shown as "about").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate

from integrations.models import UsageDaily, UsageRecord
from integrations.models.gateway import LATENCY_BOUNDS
from integrations.team.roles import is_admin

BUCKETS = [f"h{i}" for i in range(len(LATENCY_BOUNDS) + 1)]
SUMS = ["requests", "errors", "refused", "stopped", "prompt_tokens", "completion_tokens",
        "estimated", "cost", *BUCKETS]  # fmt: skip


def scope(user):
    """Admins see all usage; anyone else their keys' calls and their own Sandbox runs."""
    rows = UsageDaily.objects.all()
    if is_admin(user):
        return rows
    return rows.filter(Q(key__owner=user) | Q(key__isnull=True, user=user))


@dataclass
class Totals:
    label: str
    requests: int
    errors: int  # upstream failures (refusals and stopped runs are counted apart)
    refused: int
    stopped: int
    prompt_tokens: int
    completion_tokens: int
    estimated: int
    cost: Decimal
    p50: int | None
    p95: int | None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def error_rate(self) -> float:
        """Failures among the calls that reached an upstream and ran to their end."""
        called = self.requests - self.refused - self.stopped
        return self.errors / called if called else 0.0

    @property
    def error_percent(self) -> float:
        return round(100 * self.error_rate, 1)


def percentile(counts: list[int], share: float) -> int | None:
    """The latency bucket bound under which `share` of the calls finished."""
    total = sum(counts)
    if not total:
        return None
    running = 0
    for i, count in enumerate(counts):
        running += count
        if running >= share * total:
            return LATENCY_BOUNDS[i] if i < len(LATENCY_BOUNDS) else LATENCY_BOUNDS[-1] * 2
    return None


def _totals(label, row: dict) -> Totals:
    counts = [row[f"s_{b}"] or 0 for b in BUCKETS]
    return Totals(
        label=label,
        requests=row["s_requests"] or 0,
        errors=row["s_errors"] or 0,
        refused=row["s_refused"] or 0,
        stopped=row["s_stopped"] or 0,
        prompt_tokens=row["s_prompt_tokens"] or 0,
        completion_tokens=row["s_completion_tokens"] or 0,
        estimated=row["s_estimated"] or 0,
        cost=row["s_cost"] or Decimal(0),
        p50=percentile(counts, 0.5),
        p95=percentile(counts, 0.95),
    )


def _grouped(rows, *fields):
    return rows.values(*fields).annotate(**{f"s_{s}": Sum(s) for s in SUMS}).order_by(*fields)


def in_range(user, start: date, end: date, model: str = "", key: str = ""):
    rows = scope(user).filter(day__gte=start, day__lte=end)
    if model:
        rows = rows.filter(model_name=model)
    if key:
        rows = rows.filter(key_id=key)
    return rows


def daily(rows, start: date, end: date) -> list[Totals]:
    """One entry per day of the range, zero where nothing ran."""
    found = {r["day"]: _totals(r["day"], r) for r in _grouped(rows, "day")}
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    empty = dict.fromkeys([f"s_{s}" for s in SUMS])
    return [found.get(d) or _totals(d, empty) for d in days]


def by_model(rows) -> list[Totals]:
    return [_totals(r["model_name"], r) for r in _grouped(rows, "model_name")]


def by_key(rows) -> list[Totals]:
    """Per gateway key; Sandbox runs (no key) are one line."""
    result = []
    for r in _grouped(rows, "key__name", "key__prefix", "source"):
        label = f"{r['key__name']} ({r['key__prefix']}…)" if r["key__name"] else "Sandbox"
        result.append(_totals(label, r))
    return result


def csv_rows(rows):
    """Per day, source, key and model, for the CSV export."""
    header = ["day", "source", "key", "model", "requests", "errors", "refused", "stopped", "prompt_tokens",
              "completion_tokens", "estimated_calls", "cost_usd", "p50_ms_about", "p95_ms_about"]  # fmt: skip
    yield header
    for r in _grouped(rows, "day", "source", "key__name", "model_name"):
        t = _totals(r["model_name"], r)
        yield [r["day"].isoformat(), r["source"], r["key__name"] or "", r["model_name"],
               t.requests, t.errors, t.refused, t.stopped, t.prompt_tokens, t.completion_tokens, t.estimated,
               f"{t.cost:.8f}", t.p50 or "", t.p95 or ""]  # fmt: skip


def sum_of(parts: list[Totals]) -> Totals:
    """The range's totals (percentiles are not additive: none here)."""
    return Totals(
        "All",
        sum(t.requests for t in parts),
        sum(t.errors for t in parts),
        sum(t.refused for t in parts),
        sum(t.stopped for t in parts),
        sum(t.prompt_tokens for t in parts),
        sum(t.completion_tokens for t in parts),
        sum(t.estimated for t in parts),
        sum((t.cost for t in parts), Decimal(0)),
        None,
        None,
    )


# --- refusals, read from the rows: their reasons are not in the daily totals -------------------


def refused_rows(user, start: date, end: date, model: str = "", key: str = ""):
    """The refused calls in the range that this user may see, newest first."""
    rows = UsageRecord.objects.filter(
        refused=True, created_at__date__gte=start, created_at__date__lte=end
    )
    if not is_admin(user):
        rows = rows.filter(Q(key__owner=user) | Q(key__isnull=True, user=user))
    if model:
        rows = rows.filter(model_name=model)
    if key:
        rows = rows.filter(key_id=key)
    return rows.order_by("-created_at")


@dataclass
class Refusals:
    total: int
    per_day: list[int]  # one per day of the range
    by_reason: list[tuple[str, int, int]]  # (reason, status, calls), most first
    by_key: list[tuple[str, int]]  # ("name (prefix…)" or "No known key", calls)


def refusals(rows, start: date, end: date) -> Refusals:
    rows = rows.order_by()  # grouped below: an ordering would split the groups
    counted = dict(
        rows.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    reasons = rows.values("error_kind", "status_code").annotate(n=Count("id")).order_by("-n")
    keys = rows.values("key__name", "key__prefix").annotate(n=Count("id")).order_by("-n")
    return Refusals(
        total=sum(counted.values()),
        per_day=[counted.get(d, 0) for d in days],
        by_reason=[(r["error_kind"] or "refused", r["status_code"] or 0, r["n"]) for r in reasons],
        by_key=[
            (
                f"{k['key__name']} ({k['key__prefix']}…)" if k["key__name"] else "No known key",
                k["n"],
            )
            for k in keys
        ],  # fmt: skip
    )


def refused_csv(rows):
    yield ["time", "key", "model", "reason", "status", "door"]
    for r in rows.select_related("key").iterator():
        yield [r.created_at.isoformat(), r.key.name if r.key else "", r.model_name, r.error_kind,
               r.status_code or "", r.door]  # fmt: skip
