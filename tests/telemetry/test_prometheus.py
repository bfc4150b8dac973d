"""A real Prometheus (Debian's package) scrapes the console under gunicorn with two
workers, in each server mode, and counts every call: the sum over both workers, since
either may answer a scrape."""

from __future__ import annotations

import glob
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.production import SECURE, ProductionServer, free_port
from tests.upstream import reply_load

PROMETHEUS = shutil.which("prometheus")
TOKEN = "scrape-token-0123456789"

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="needs Debian's prometheus (.ci/run installs it)"
)


class Prometheus:
    def __init__(self, tmp_path: Path, target: str):
        self.port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: console\n"
            "    metrics_path: /metrics\n"
            f"    authorization: {{type: Bearer, credentials: {TOKEN}}}\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def value(self, query: str) -> float | None:
        try:
            answer = httpx.get(
                f"http://127.0.0.1:{self.port}/api/v1/query", params={"query": query}, timeout=2
            ).json()
        except (httpx.HTTPError, ValueError):
            return None
        found = answer.get("data", {}).get("result", [])
        return float(found[0]["value"][1]) if found else None

    def wait_for(self, query: str, expected: float, seconds: float = 30) -> float | None:
        deadline, seen = time.monotonic() + seconds, None
        while time.monotonic() < deadline:
            seen = self.value(query)
            if seen == expected:
                return seen
            time.sleep(0.5)
        return seen

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def per_worker(directory: Path, name: str) -> list[float]:
    """Each worker's own count of a counter, from its file."""
    counts = []
    for path in sorted(glob.glob(str(directory / "counter_*.db"))):
        total = 0.0
        for family in MultiProcessCollector._read_metrics([path]).values():
            total += sum(s.value for s in family.samples if s.name == f"{name}_total")
        counts.append(total)
    return counts


@pytest.mark.parametrize("mode", ["wsgi", "asgi"])
def test_prometheus_counts_every_call_across_both_workers(tmp_path, upstream, mode):
    upstream.handler = reply_load(latency=0.15, tokens=3)
    metrics_dir = tmp_path / "metrics"
    server = ProductionServer(
        tmp_path, f"{upstream.url}/v1", mode,
        WEB_CONCURRENCY="2", METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        ALLOWED_HOSTS="console.example.com,127.0.0.1",
    )  # fmt: skip
    server.start()
    prometheus = Prometheus(tmp_path, f"127.0.0.1:{server.port}")
    statuses: list[int] = []

    def caller(model: str, times: int):
        for _ in range(times):  # a new connection each time: the kernel spreads them
            with server.gateway() as gateway:
                body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
                statuses.append(gateway.post("/chat/completions", json=body).status_code)

    try:
        threads = [threading.Thread(target=caller, args=("Model A", 5)) for _ in range(8)]
        threads.append(threading.Thread(target=caller, args=("No such model", 3)))
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(set(statuses)) == [200, 404] and len(statuses) == 43
        total = 'sum(litellm_proxy_total_requests_metric_total{job="console"})'
        assert prometheus.wait_for(total, 43) == 43
        answered = 'sum(litellm_proxy_total_requests_metric_total{status_code="200"})'
        assert prometheus.value(answered) == 40
        refused = 'sum(litellm_proxy_failed_requests_metric_total{exception_status="404"})'
        assert prometheus.value(refused) == 3
        tokens = 'sum(litellm_output_tokens_metric_total{requested_model="Model A"})'
        assert prometheus.value(tokens) == 40 * 3
        assert prometheus.value("sum(litellm_in_flight_requests)") == 0
        latency = 'sum(litellm_request_total_latency_metric_count{model="Model A"})'
        assert prometheus.value(latency) == 40
        workers = [c for c in per_worker(metrics_dir, "litellm_proxy_total_requests_metric") if c]
        assert len(workers) == 2, f"one worker served every call: {workers}"
        assert sum(workers) == 43
        # Without the token there is nothing to read.
        assert httpx.get(f"{server.url}/metrics", headers=SECURE).status_code == 401
    finally:
        prometheus.stop()
        server.stop()


def test_counts_outlive_workers_replaced_for_idling_and_never_read_as_a_reset(tmp_path, upstream):
    """Under asgi, workers that served calls and then idle are replaced (GUNICORN_IDLE_
    REPLACE): what they counted is folded into one archive file as each ends, so the
    totals hold while Prometheus scrapes every second, and the old files are gone."""
    upstream.handler = reply_load(tokens=3)
    metrics_dir = tmp_path / "metrics"
    server = ProductionServer(
        tmp_path, f"{upstream.url}/v1", "asgi",
        WEB_CONCURRENCY="2", METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        ALLOWED_HOSTS="console.example.com,127.0.0.1", GUNICORN_IDLE_REPLACE="2",
    )  # fmt: skip
    server.start()
    prometheus = Prometheus(tmp_path, f"127.0.0.1:{server.port}")
    total = 'sum(litellm_proxy_total_requests_metric_total{job="console"})'
    try:
        time.sleep(1)  # both workers serving
        first = set(server.workers())

        assert [a.status_code for a in server.calls_at_once(16)] == [200] * 16
        assert prometheus.wait_for(total, 16) == 16
        deadline = time.monotonic() + 30
        while set(server.workers()) & first and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not set(server.workers()) & first, "the workers were not replaced"
        time.sleep(3)  # scrapes after the replacements
        assert prometheus.value(total) == 16
        resets = 'sum(resets(litellm_proxy_total_requests_metric_total{job="console"}[5m]))'
        assert prometheus.value(resets) == 0
        ended = [
            p.name for p in metrics_dir.glob("*.db") if any(str(pid) in p.name for pid in first)
        ]
        assert ended == [], ended
        assert (metrics_dir / "counter_archive.db").exists()
    finally:
        prometheus.stop()
        server.stop()
