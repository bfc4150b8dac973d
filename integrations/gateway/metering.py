"""Usage rows for every gateway call and Sandbox run, written after the response.

A call adds its row to the request; the middleware below hands the rows to the
response's closers, which the server runs once the last byte has gone (for a stream,
once it ends or the client leaves). The caller never waits on the insert. Old rows
are pruned by `manage.py prune_usage` (USAGE_RETENTION_DAYS).
"""

from __future__ import annotations

import bisect
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from integrations.models import UsageDaily, UsageRecord
from integrations.models.gateway import LATENCY_BOUNDS

PENDING = "_usage_rows"


def record(request, **fields) -> UsageRecord:
    """Queue a usage row for after the response (written now when there is no request)."""
    row = UsageRecord(created_at=timezone.now(), **fields)
    if request is None or not hasattr(request, "META"):
        row.save(force_insert=True)
    else:
        request.__dict__.setdefault(PENDING, []).append(row)
    return row


def flush(request) -> None:
    rows = request.__dict__.pop(PENDING, None)
    if rows:
        UsageRecord.objects.bulk_create(rows)
        for row in rows:
            roll_up(row)


def roll_up(row: UsageRecord) -> None:
    """Add a row to its day's totals (one UPDATE; an INSERT for the day's first call)."""
    day = timezone.localdate(row.created_at)
    slot = f"{day}|{row.source}|{row.key_id or ''}|{row.user_id or ''}|{row.model_name}"
    bucket = f"h{bisect.bisect_right(LATENCY_BOUNDS, row.latency_ms or 0)}"
    counts = {
        "requests": F("requests") + 1,
        "errors": F("errors") + (0 if row.ok else 1),
        "prompt_tokens": F("prompt_tokens") + row.prompt_tokens,
        "completion_tokens": F("completion_tokens") + row.completion_tokens,
        "estimated": F("estimated") + (1 if row.estimated else 0),
        "cost": F("cost") + (row.cost or Decimal(0)),
        bucket: F(bucket) + 1,
    }
    if UsageDaily.objects.filter(slot=slot).update(**counts):
        return
    first = {name: expression.rhs.value for name, expression in counts.items()}
    try:
        with transaction.atomic():
            UsageDaily.objects.create(
                slot=slot,
                day=day,
                source=row.source,
                key_id=row.key_id,
                user_id=row.user_id,
                model_name=row.model_name,
                **first,
            )
    except IntegrityError:  # another worker made the day's row first: add to it
        UsageDaily.objects.filter(slot=slot).update(**counts)


def after_response(get_response):
    """Write the request's usage rows once the response is sent."""

    def middleware(request):
        response = get_response(request)
        response._resource_closers.append(lambda: flush(request))
        return response

    return middleware


def from_run(request, run) -> None:
    """A Sandbox run's usage row."""
    record(
        request,
        source="sandbox",
        user=run.user,
        model=run.model,
        model_name=run.model_name,
        prompt_tokens=run.prompt_tokens or 0,
        completion_tokens=run.completion_tokens or 0,
        estimated=run.usage_estimated,
        cost=run.cost,
        latency_ms=run.latency_ms,
        ttft_ms=run.ttft_ms,
        ok=run.status == "ok",
        status_code=run.status_code,
        error_kind=run.error_kind,
        streamed=run.streamed,
    )
