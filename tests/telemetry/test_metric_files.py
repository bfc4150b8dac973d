"""An ended worker's counts are folded into one archive file: a scrape reads the same
totals before and after, and the folder stops growing with every worker replaced."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

from integrations.telemetry import files


def _write(path: Path, name: str, *values: tuple) -> None:
    """One worker's file, as prometheus_client writes it: (metric, sample, labels, value,
    when) per series."""
    counts = MmapedDict(str(path / name))
    for metric, sample, labels, value, at in values:
        key = mmap_key(metric, sample, list(labels), list(labels.values()), "help")
        counts.write_value(key, value, at)
    counts.close()


def _scrape(path: Path) -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in MultiProcessCollector(None, str(path)).collect()
        for s in family.samples
    }


def _worker(path: Path, pid: int, calls: float, slow: float, remaining: float, at: float):
    _write(path, f"counter_{pid}.db", ("calls", "calls_total", {"model": "a"}, calls, 0))
    _write(
        path, f"histogram_{pid}.db",
        ("latency", "latency_bucket", {"le": "0.5"}, calls - slow, 0),
        ("latency", "latency_bucket", {"le": "+Inf"}, slow, 0),
        ("latency", "latency_sum", {}, calls * 0.4, 0),
        ("latency", "latency_count", {}, calls, 0),
    )  # fmt: skip
    _write(path, f"gauge_mostrecent_{pid}.db", ("left", "left", {}, remaining, at))
    _write(path, f"gauge_livesum_{pid}.db", ("in_flight", "in_flight", {}, 1, 0))


def test_an_ended_workers_counts_stay_in_the_totals_and_its_files_go(tmp_path):
    _worker(tmp_path, 101, calls=5, slow=1, remaining=40, at=1000.0)
    _worker(tmp_path, 102, calls=7, slow=2, remaining=10, at=2000.0)  # the newer reading
    _worker(tmp_path, 103, calls=2, slow=0, remaining=90, at=1500.0)
    live = _scrape(tmp_path)
    assert live[("calls_total", (("model", "a"),))] == 14
    assert live[("in_flight", ())] == 3

    files.worker_ended(101, str(tmp_path))
    files.worker_ended(102, str(tmp_path))
    after = _scrape(tmp_path)
    assert after.pop(("in_flight", ())) == 1  # only the live worker is in flight
    live.pop(("in_flight", ()))
    assert after == live  # counters, every bucket, sum, count, and the newest gauge
    assert after[("latency_bucket", (("le", "0.5"),))] == 11
    assert after[("left", ())] == 10

    names = sorted(p.name for p in tmp_path.glob("*.db"))
    assert names == [
        "counter_103.db", "counter_archive.db", "gauge_livesum_103.db",
        "gauge_mostrecent_103.db", "gauge_mostrecent_archive.db",
        "histogram_103.db", "histogram_archive.db",
    ]  # fmt: skip
    files.worker_ended(103, str(tmp_path))
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "counter_archive.db",
        "gauge_mostrecent_archive.db",
        "histogram_archive.db",
    ]
    final = _scrape(tmp_path)
    assert final[("calls_total", (("model", "a"),))] == 14
    assert final[("latency_count", ())] == 14 and final[("left", ())] == 10


def test_a_worker_that_counted_nothing_leaves_nothing_to_fold(tmp_path):
    files.worker_ended(4242, str(tmp_path))
    assert list(tmp_path.glob("*.db")) == []
