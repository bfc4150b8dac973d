"""Prometheus' multiprocess files (PROMETHEUS_MULTIPROC_DIR): one set per worker.

A worker's counters and histograms must outlive it (a counter that fell when a worker
ended would read as a reset), so prometheus_client keeps the files of every worker that
ever ran, and each scrape reads them all. Workers are replaced (max_requests, and under
`asgi` after idling), so the folder would grow by a few files a replacement for as long
as the server runs. Instead, when a worker ends, the master folds its counts into one
archive file per kind, which the scrape reads like any worker's, and deletes its files.
A lock keeps a scrape from seeing the counts twice or not at all while that happens.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil

from prometheus_client import multiprocess
from prometheus_client.mmap_dict import MmapedDict

# The kinds whose files stay after a worker ends ("live" gauges are deleted outright,
# by mark_process_dead). A most-recent gauge keeps the newer of two values.
KINDS = ("counter", "histogram", "gauge_mostrecent")


@contextlib.contextmanager
def locked(path: str, exclusive: bool = False):
    """Hold the folder's lock: shared while a scrape reads, exclusive while folding."""
    with open(os.path.join(path, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def worker_ended(pid: int, path: str) -> None:
    """Drop an ended worker's live gauges and fold the rest of its counts into the
    archive (`<kind>_archive.db`), so nothing it counted is lost or counted twice."""
    multiprocess.mark_process_dead(pid, path)
    with locked(path, exclusive=True):
        for kind in KINDS:
            ended = os.path.join(path, f"{kind}_{pid}.db")
            if os.path.exists(ended):
                _fold(ended, os.path.join(path, f"{kind}_archive.db"), kind)


def _fold(ended: str, archive: str, kind: str) -> None:
    """Write archive + ended into a new file beside the archive (not named *.db, so no
    scrape reads it half-made), swap it in, then delete the ended worker's file."""
    staged = archive + ".new"
    if os.path.exists(archive):
        shutil.copyfile(archive, staged)
    totals = MmapedDict(staged)
    try:
        for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(ended):
            held, held_at = totals.read_value(key)
            if kind == "gauge_mostrecent":
                if timestamp >= held_at:
                    totals.write_value(key, value, timestamp)
            else:  # counters, and a histogram's buckets, sum and count
                totals.write_value(key, held + value, max(timestamp, held_at))
    finally:
        totals.close()
    os.replace(staged, archive)
    os.remove(ended)
