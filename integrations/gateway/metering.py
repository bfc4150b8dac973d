"""Usage rows for every gateway call and Sandbox run, written after the response.

A call adds its row to the request; the middleware below hands the rows over when the
server closes the response, once the last byte has gone (for a stream, once it ends or
the client leaves). With USAGE_WRITE=background (production) a writer thread per process
then inserts them in batches and adds each batch to the daily totals with one UPDATE per
day, key, user and model, so neither the caller nor the next request on the connection
waits on the database. USAGE_WRITE=inline writes in the closer itself (tests, whose
rows live in the test's transaction). Old rows are pruned by `manage.py prune_usage`.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import time
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from config.middleware import on_response
from integrations.models import UsageDaily, UsageRecord
from integrations.models.gateway import LATENCY_BOUNDS

logger = logging.getLogger(__name__)

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
    if not rows:
        return
    if settings.USAGE_WRITE == "background":
        _writer.put(rows)
    else:
        write(rows)


def write(rows: list[UsageRecord]) -> None:
    """Insert rows and add them to the daily totals, one UPDATE per slot."""
    UsageRecord.objects.bulk_create(rows)
    slots: dict[str, tuple] = {}
    for row in rows:
        slot, day, counts = _counts(row)
        if slot in slots:
            total = slots[slot][2]
            for name, value in counts.items():
                total[name] = total.get(name, 0) + value
        else:
            slots[slot] = (day, row, counts)
    for slot, (day, row, counts) in slots.items():
        _add(slot, day, row, counts)


def roll_up(row: UsageRecord) -> None:
    """Add one stored row to its day's totals."""
    slot, day, counts = _counts(row)
    _add(slot, day, row, counts)


def _counts(row: UsageRecord) -> tuple[str, object, dict]:
    """A row's slot in the daily totals (day, source, key, user, model) and what it adds."""
    day = timezone.localdate(row.created_at)
    slot = f"{day}|{row.source}|{row.key_id or ''}|{row.user_id or ''}|{row.model_name}"
    return (
        slot,
        day,
        {
            "requests": 1,
            "errors": 0 if row.ok else 1,
            "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens,
            "estimated": 1 if row.estimated else 0,
            "cost": row.cost or Decimal(0),
            f"h{bisect.bisect_right(LATENCY_BOUNDS, row.latency_ms or 0)}": 1,
        },
    )


def _add(slot: str, day, row: UsageRecord, counts: dict) -> None:
    """One UPDATE adding the counts; an INSERT for the day's first call."""
    added = {name: F(name) + value for name, value in counts.items()}
    if UsageDaily.objects.filter(slot=slot).update(**added):
        return
    try:
        with transaction.atomic():
            UsageDaily.objects.create(
                slot=slot,
                day=day,
                source=row.source,
                key_id=row.key_id,
                user_id=row.user_id,
                model_name=row.model_name,
                **counts,
            )
    except IntegrityError:  # another worker made the day's row first: add to it
        UsageDaily.objects.filter(slot=slot).update(**added)


class _Writer:
    """One thread per process that writes queued rows in batches (started on first use)."""

    BATCH_SECONDS = 0.2

    def __init__(self):
        self.lock = threading.Condition()
        self.writing = threading.Lock()
        self.rows: list[UsageRecord] = []
        self.thread: threading.Thread | None = None
        self.pid = None

    def put(self, rows: list[UsageRecord]) -> None:
        with self.lock:
            self.rows.extend(rows)
            if self.thread is None or self.pid != os.getpid():  # a forked worker needs its own
                self.pid = os.getpid()
                self.thread = threading.Thread(target=self.run, name="usage-writer", daemon=True)
                self.thread.start()
            self.lock.notify()

    def run(self) -> None:
        while True:
            with self.lock:
                while not self.rows:
                    self.lock.wait()
            time.sleep(self.BATCH_SECONDS)  # gather a batch
            self.drain()

    def drain(self) -> None:
        # One drain at a time: the exit handler's waits for a batch the thread is still
        # writing, which a daemon thread would otherwise drop as the process ends.
        with self.writing:
            with self.lock:
                batch, self.rows = self.rows, []
            if not batch:
                return
            try:
                write(batch)
            except Exception:  # a lost batch must not stop the writer; say so in the log
                logger.exception("Could not write %d usage rows", len(batch))
            finally:
                close_old_connections()


_writer = _Writer()
atexit.register(_writer.drain)  # a recycled worker writes what it holds before it goes


@on_response
def after_response(request, response):
    """Write the request's usage rows once the response is sent."""
    response._resource_closers.append(lambda: flush(request))
    return response


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
