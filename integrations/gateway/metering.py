"""Usage rows for every gateway call and Sandbox run, written after the response.

A call adds its row to the request; the middleware below hands the rows over when the
server closes the response, once the last byte has gone (for a stream, once it ends or
the client leaves). With USAGE_WRITE=background (production) each row is first appended
to this worker's spool on disk (integrations.gateway.spool) as the call ends, so a
killed worker loses none; a writer thread per process then inserts them in batches and
adds each batch to the daily totals with one UPDATE per day, key, user and model, so
neither the caller nor the next request on the connection waits on the database.
USAGE_WRITE=inline writes in the closer itself (tests, whose rows live in the test's
transaction). Old rows are pruned by `manage.py prune_usage`.

A row the database would refuse is fitted to its columns first; a batch the database
still refuses is written row by row, so one bad row never takes the others with it.
While the database is unreachable the writer keeps its rows and tries again.
"""

from __future__ import annotations

import atexit
import bisect
import functools
import logging
import os
import threading
import time
import uuid
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import (
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    models,
    transaction,
)
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import F
from django.utils import timezone

from config.middleware import on_response
from integrations.gateway import spool
from integrations.models import UsageDaily, UsageRecord
from integrations.models.gateway import LATENCY_BOUNDS
from integrations.telemetry import metrics

logger = logging.getLogger(__name__)

PENDING = "_usage_rows"


def record(request, result=None, upstream_ms=None, config=None, **fields) -> UsageRecord:
    """Queue a usage row for after the response (written now when there is no request).
    In production the row is on disk before this returns: before the call is answered.
    The row is counted in the metrics here; `result`, `upstream_ms` and `config` tell
    them what a row does not hold (integrations.telemetry.metrics.observe)."""
    row = fit(UsageRecord(created_at=timezone.now(), spool_id=uuid.uuid4(), **fields))
    metrics.observe(row, result, upstream_ms, config)
    if request is None or not hasattr(request, "META"):
        write([row])
        return row
    if settings.USAGE_WRITE == "background":
        try:
            spool.append(row)
        except OSError:  # a full or read-only disk: the row is still queued, only not safe
            logger.exception("A usage row could not be spooled to %s", settings.USAGE_SPOOL_DIR)
    request.__dict__.setdefault(PENDING, []).append(row)
    return row


STOPPED = "stopped"  # the error kind of a run a person stopped: not an error


def refused(
    request, door: str, reason: str, status: int, key=None, model=None, model_name=""
) -> None:
    """A call the gateway refused before any upstream call, as its own usage row."""
    record(
        request, source="gateway", key=key, user=key.owner if key is not None else None,
        model=model, model_name=(model_name or "")[:100], ok=False, refused=True,
        status_code=status, error_kind=reason[:40], door=door,
    )  # fmt: skip


def record_later(**fields) -> UsageRecord:
    """A background task's usage row: on disk at once (the spool), written to the
    database with the writer's next batch, as the gateway's are."""
    row = fit(UsageRecord(created_at=timezone.now(), spool_id=uuid.uuid4(), **fields))
    metrics.observe(row)
    try:
        spool.append(row)
    except OSError:
        logger.exception("A usage row could not be spooled to %s", settings.USAGE_SPOOL_DIR)
    _writer.put([row])
    return row


def written() -> bool:
    """Write the rows queued in this process now (a task ending); False if the database
    is away (they stay queued and on disk)."""
    return _writer.drain()


def fit(row: UsageRecord) -> UsageRecord:
    """Bring every value within its column: counts within the integer range, text within
    its length, cost within its digits. What an upstream reports must not cost a row."""
    for attname, kind, low, high, step in _columns():
        value = getattr(row, attname)
        if value is None or isinstance(value, bool):
            continue
        if kind == "int" and isinstance(value, int):
            if not low <= value <= high:
                setattr(row, attname, min(max(value, low), high))
        elif kind == "text" and isinstance(value, str):
            if len(value) > high:
                setattr(row, attname, value[:high])
        elif kind == "decimal":
            try:
                value = Decimal(value)
            except (InvalidOperation, TypeError, ValueError):
                value = None
            if value is not None and value.is_finite():
                value = min(max(value, low), high).quantize(step)
            setattr(row, attname, value if value is None or value.is_finite() else None)
    return row


@functools.cache
def _columns() -> list[tuple]:
    """Each column's rule, worked out once: (attname, kind, low, high, step). The integer
    ranges are the portable ones (PostgreSQL's): SQLite would take any 64-bit value."""
    out = []
    for field in UsageRecord._meta.concrete_fields:
        if isinstance(field, models.IntegerField) and not field.is_relation:
            low, high = BaseDatabaseOperations.integer_field_ranges[field.get_internal_type()]
            out.append((field.attname, "int", low, high, None))
        elif isinstance(field, models.CharField):
            out.append((field.attname, "text", 0, field.max_length, None))
        elif isinstance(field, models.DecimalField):
            step = Decimal(1).scaleb(-field.decimal_places)
            top = Decimal(10) ** (field.max_digits - field.decimal_places) - step
            out.append((field.attname, "decimal", Decimal(0), top, step))
    return out


def flush(request) -> None:
    rows = request.__dict__.pop(PENDING, None)
    if not rows:
        return
    if settings.USAGE_WRITE == "background":
        _writer.put(rows)
    else:
        write(rows)


# What a row can do wrong, as opposed to the database being away.
REFUSED = (DataError, IntegrityError, ValueError, TypeError, InvalidOperation)


def write(rows: list[UsageRecord]) -> list[UsageRecord]:
    """Insert rows and add them to the daily totals, one UPDATE per slot, in one
    transaction. If the database refuses the batch, each row goes alone: the ones it
    still refuses are logged and returned, and the others land."""
    dropped = _write(rows)
    metrics.usage_written.inc(len(rows) - len(dropped))
    metrics.usage_dropped.inc(len(dropped))
    return dropped


def _write(rows: list[UsageRecord]) -> list[UsageRecord]:
    try:
        with transaction.atomic():
            _insert(rows)
        return []
    except REFUSED:
        if len(rows) == 1:
            logger.exception("A usage row was refused and dropped: %s", _describe(rows[0]))
            return rows
    dropped = []
    for row in rows:
        row.pk = None
        dropped += _write([row])
    return dropped


def _describe(row: UsageRecord) -> str:
    return f"{row.source} {row.model_name!r} key={row.key_id} tokens={row.prompt_tokens}+{row.completion_tokens} cost={row.cost}"


def _insert(rows: list[UsageRecord]) -> None:
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
    stopped = row.error_kind == STOPPED
    counts = {
        "requests": 1,
        "errors": 0 if row.ok or row.refused or stopped else 1,
        "refused": 1 if row.refused else 0,
        "stopped": 1 if stopped else 0,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "estimated": 1 if row.estimated else 0,
        "cost": row.cost or Decimal(0),
    }
    if not row.refused:  # a refusal took no time upstream: it stays out of the latencies
        counts[f"h{bisect.bisect_right(LATENCY_BOUNDS, row.latency_ms or 0)}"] = 1
    return slot, day, counts


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
    """One thread per process that writes queued rows in batches (started on first use).

    Rows it cannot write because the database is away stay queued (and on disk) and are
    tried again; rows the database refuses outright are logged and let go."""

    BATCH_SECONDS = 0.2
    RETRY_SECONDS = (0.5, 1, 2, 5, 10)

    def __init__(self):
        self.lock = threading.Condition()
        self.writing = threading.Lock()
        self.rows: list[UsageRecord] = []
        self.thread: threading.Thread | None = None
        self.pid = None
        self.failures = 0
        self.dropped = 0

    def put(self, rows: list[UsageRecord]) -> None:
        metrics.usage_queue.inc(len(rows))
        with self.lock:
            self.rows.extend(rows)
            if self.thread is None or self.pid != os.getpid():  # a forked worker needs its own
                self.pid = os.getpid()
                self.thread = threading.Thread(target=self.run, name="usage-writer", daemon=True)
                self.thread.start()
            self.lock.notify()

    def run(self) -> None:
        try:
            spool.recover()  # what a worker killed before this one left on disk
        except Exception:
            logger.exception("Could not recover spooled usage rows")
        finally:
            close_old_connections()
        while True:
            with self.lock:
                while not self.rows:
                    self.lock.wait()
            time.sleep(self.BATCH_SECONDS)  # gather a batch
            if not self.drain():
                self.failures += 1
                time.sleep(self.RETRY_SECONDS[min(self.failures, len(self.RETRY_SECONDS)) - 1])
            else:
                self.failures = 0

    def drain(self) -> bool:
        """Write what is queued; False when the database could not be reached."""
        # One drain at a time: the exit handler's waits for a batch the thread is still
        # writing, which a daemon thread would otherwise drop as the process ends.
        with self.writing:
            with self.lock:
                batch, self.rows = self.rows, []
            if not batch:
                return True
            try:
                dropped = write(batch)
            except (OperationalError, InterfaceError) as exc:
                logger.warning("Usage rows wait for the database (%d): %s", len(batch), exc)
                with self.lock:
                    self.rows[:0] = batch  # first in line next time; still on disk meanwhile
                return False
            except Exception:  # a bug must not stop the writer; the rows stay on disk,
                logger.exception("Could not write %d usage rows", len(batch))  # for a restart
                metrics.usage_queue.dec(len(batch))
                return True
            finally:
                close_old_connections()
            self.dropped += len(dropped)
            metrics.usage_queue.dec(len(batch))
            spool.acknowledge(batch)
            return True


_writer = _Writer()


@atexit.register
def _at_exit() -> None:
    """A recycled or stopped worker writes what it holds before it goes; its spool files
    go with it once their rows are in (what is not stays for the next worker)."""
    if _writer.drain():
        spool.close()


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
        error_kind=STOPPED if run.status == "stopped" else run.error_kind,
        streamed=run.streamed,
    )
