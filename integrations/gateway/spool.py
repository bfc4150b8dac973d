"""A durable spool for usage rows: each row is on disk before its call is answered.

The background writer inserts rows a moment after the response; a worker killed in that
moment (SIGKILL, the OOM killer, a crash) used to take its queued rows with it. Now
`append` writes each row to a file of this process's own (one write(2) to an append-only
file: the kernel keeps it if the process dies) and `acknowledge` marks it done once the
database has it. A file whose rows are all written is deleted. The process holds a lock
on its files while it lives; a process that finds another's files unlocked (their owner
is dead) replays them at its start: rows the database already has (by their spool id)
are skipped, so a row is never counted twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import threading
import uuid
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.utils.dateparse import parse_datetime

logger = logging.getLogger(__name__)

SEGMENT_ROWS = 5000  # a file is closed after this many rows, and deleted once all are in
FIELDS = (
    "source", "key_id", "user_id", "model_id", "model_name", "prompt_tokens",
    "completion_tokens", "estimated", "latency_ms", "ttft_ms", "ok", "refused", "status_code",
    "error_kind", "streamed", "door", "prompt", "route", "attempts", "fallbacks",
)  # fmt: skip


def _folder() -> Path:
    folder = Path(settings.USAGE_SPOOL_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def dumps(row) -> bytes:
    data = {name: getattr(row, name) for name in FIELDS}
    data["spool_id"] = str(row.spool_id)
    data["created_at"] = row.created_at.isoformat()
    data["cost"] = None if row.cost is None else str(row.cost)
    for name in ("key_id", "user_id", "model_id"):
        data[name] = None if data[name] is None else str(data[name])
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def loads(line: bytes):
    from integrations.models import UsageRecord

    data = json.loads(line)
    data["spool_id"] = uuid.UUID(data["spool_id"])
    data["created_at"] = parse_datetime(data["created_at"])
    data["cost"] = None if data["cost"] is None else Decimal(data["cost"])
    if data.get("user_id") is not None and str(data["user_id"]).isdigit():
        data["user_id"] = int(data["user_id"])
    return UsageRecord(**data)


class _Segment:
    def __init__(self, folder: Path):
        self.path = folder / f"usage-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours while we live
        self.appended = self.done = 0

    def close_if_done(self, current: bool) -> bool:
        if current or self.done < self.appended:
            return False
        os.close(self.fd)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        return True


class Spool:
    """This process's spool: rows appended as calls end, acknowledged as they land."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pid = None
        self.current: _Segment | None = None
        self.segments: list[_Segment] = []

    def append(self, row) -> None:
        line = dumps(row)
        with self.lock:
            if self.pid != os.getpid():  # a forked worker starts a spool of its own
                self.pid, self.current, self.segments = os.getpid(), None, []
            if self.current is None or self.current.appended >= SEGMENT_ROWS:
                self.current = _Segment(_folder())
                self.segments.append(self.current)
            os.write(self.current.fd, line)
            self.current.appended += 1
            row._spool_segment = self.current

    def acknowledge(self, rows) -> None:
        """These rows are in the database (or could never be): their files may go."""
        with self.lock:
            for row in rows:
                segment = getattr(row, "_spool_segment", None)
                if segment is not None:
                    segment.done += 1
                    row._spool_segment = None
            self.segments = [
                s for s in self.segments if not s.close_if_done(current=s is self.current)
            ]

    def close(self) -> None:
        """The process is ending: delete the files whose rows are all written."""
        with self.lock:
            if self.pid == os.getpid():
                self.segments = [s for s in self.segments if not s.close_if_done(current=False)]
                self.current = None


def writable() -> str:
    """Whether rows can be spooled here (for /healthz)."""
    try:
        folder = _folder()
    except OSError:
        return "not writable"
    return "ok" if os.access(folder, os.W_OK) else "not writable"


_spool = Spool()
append = _spool.append
acknowledge = _spool.acknowledge
close = _spool.close


def recover() -> int:
    """Write the rows of dead processes' files that the database lacks; return how many.

    A file's lock is free once its process is gone; the recovering process holds it while
    it replays, so two starting workers do not replay the same file at once."""
    folder = Path(settings.USAGE_SPOOL_DIR)
    if not folder.is_dir():
        return 0
    written = 0
    for path in sorted(folder.glob("usage-*.jsonl")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a live process's, or being replayed
            os.close(fd)
            continue
        try:
            with os.fdopen(os.dup(fd), "rb") as file:
                written += _replay(path.name, file.read().splitlines())
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    if written:
        logger.warning("Recovered %d usage rows a stopped worker had not written", written)
    return written


def _replay(name: str, lines: list[bytes]) -> int:
    from integrations.gateway import metering
    from integrations.models import UsageRecord

    rows = []
    for line in lines:
        try:
            rows.append(loads(line))
        except (ValueError, TypeError, KeyError):
            logger.error("Skipped an unreadable usage row in %s", name)  # a torn last line
    have: set = set()
    ids = [r.spool_id for r in rows]
    for start in range(0, len(ids), 500):
        found = UsageRecord.objects.filter(spool_id__in=ids[start : start + 500])
        have |= set(found.values_list("spool_id", flat=True))
    missing = [metering.fit(r) for r in rows if r.spool_id not in have]
    if missing:
        metering.write(missing)
    return len(missing)
