"""Evaluation at scale, with a real `manage.py db_worker` process:

1. 1,000 rows × 4 models on an upstream that answers in 200 ms, 16 calls at once per
   model: wall time against the ideal (rows × models × latency ÷ total concurrency;
   target within 1.15×), and the worker's CPU per call (target: queue and worker ≤ 5 ms).
2. The results page for 1,000 rows × 8 models under gunicorn: p50 (target ≤ 150 ms).

    ../.venv/bin/python bench_evaluation.py [rows]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from common import (
    ENV,
    ROOT,
    Gunicorn,
    UpstreamProcess,
    load_average,
    logged_in_client,
    make_model,
    make_user,
    percentiles,
    prepare_database,
    save,
    table,
)

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
MODELS, CONCURRENCY, LATENCY = 4, 16, 0.2


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_experiment(user, upstream) -> dict:
    from sandbox import experiments
    from sandbox.models import Dataset, Experiment
    from tests.evaluation.helpers import request_of

    models = [make_model(f"Eval {i}", f"{upstream.url}/v1", f"m{i}") for i in range(MODELS)]
    dataset = Dataset.objects.create(name="Bench rows", owner=user)
    from sandbox import datasets

    rows = [{"variables": {"word": f"w{i}"}, "expected": "x", "metadata": {}} for i in range(ROWS)]
    version = datasets.save_version(dataset, rows, user, "bench")
    env = {**os.environ, **ENV}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--interval", "0.05", "--no-startup-delay"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        time.sleep(3)  # booted and polling
        before = cpu_seconds(worker.pid)
        started = time.perf_counter()
        experiment = experiments.create(
            request_of(user), name="Bench", dataset_version=version, user_prompt="Say {{word}}",
            targets=[{"model": str(m.pk)} for m in models], scorers=[{"kind": "contains", "value": "x"}],
            concurrency=CONCURRENCY,
        )  # fmt: skip
        while Experiment.objects.filter(pk=experiment.pk, status__in=experiments.ACTIVE).exists():
            time.sleep(0.05)
        wall = time.perf_counter() - started
        cpu = cpu_seconds(worker.pid) - before
    finally:
        worker.terminate()
        worker.wait(10)
    calls = ROWS * MODELS
    ideal = calls * LATENCY / (CONCURRENCY * MODELS)
    done = experiment.results.filter(status="ok").count()
    return {"calls": calls, "ok": done, "wall_s": round(wall, 2), "ideal_s": round(ideal, 2),
            "ratio": round(wall / ideal, 3), "worker_cpu_s": round(cpu, 2),
            "cpu_ms_per_call": round(1000 * cpu / calls, 2)}  # fmt: skip


def results_page(user) -> dict:
    from integrations.models import CustomModel
    from sandbox import datasets
    from sandbox.models import Dataset, Experiment, ExperimentResult

    model = CustomModel.objects.first()
    dataset = Dataset.objects.create(name="Page rows", owner=user)
    rows = [{"variables": {"word": f"w{i}"}, "expected": "x", "metadata": {}} for i in range(1000)]
    version = datasets.save_version(dataset, rows, user, "bench")
    experiment = Experiment.objects.create(
        name="Page", owner=user, dataset_version=version, user_prompt="{{word}}", status="done",
        targets=[{"model": str(model.pk), "name": f"M{t}"} for t in range(8)],
    )  # fmt: skip
    scores = [{"name": "Exact match", "value": 1.0, "passed": True, "reason": ""}]
    ExperimentResult.objects.bulk_create(
        (ExperimentResult(experiment=experiment, row=r, target=t, status="ok", output=f"answer {r}",
                          passed=True, score=1.0, latency_ms=200, completion_tokens=5, scores=scores)
         for r in range(1000) for t in range(8)), batch_size=2000,
    )  # fmt: skip
    server = Gunicorn()
    try:
        client = logged_in_client(server.url)
        url = f"/sandbox/experiments/{experiment.pk}/"
        for _ in range(3):
            client.get(url)
        times = []
        for _ in range(20):
            started = time.perf_counter()
            assert client.get(url).status_code == 200
            times.append((time.perf_counter() - started) * 1000)
    finally:
        server.stop()
    return percentiles(times)


def main() -> dict:
    prepare_database()
    user = make_user()
    upstream = UpstreamProcess(latency=LATENCY, tokens=5)
    try:
        run = run_experiment(user, upstream)
    finally:
        upstream.stop()
    load = load_average()
    table(f"Experiment: {ROWS} rows × {MODELS} models, {CONCURRENCY} at once per model, "
          f"{LATENCY * 1000:.0f} ms upstream (load {load})",
          [[k, v] for k, v in run.items()], ["figure", "value"])  # fmt: skip
    page = results_page(user)
    table(f"Results page, 1,000 rows × 8 models (load {load_average()})",
          [[k, v] for k, v in page.items()], ["ms", "value"])  # fmt: skip
    results = {"experiment": run, "results_page_ms": page}
    save("evaluation", results)
    return results


if __name__ == "__main__":
    main()
