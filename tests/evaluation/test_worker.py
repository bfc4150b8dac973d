"""An experiment on a real `manage.py db_worker` process: 2 models × 20 rows, the worker
killed mid-run and another started; no finished row runs twice (the upstream's request
log proves it) and the experiment ends with every row."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

from tests.evaluation.helpers import answering
from tests.production import PROD_ENV, ROOT, clean_environ, run_manage

SEED = """
from django.contrib.auth import get_user_model
from integrations.models import CustomModel, Integration
from sandbox import experiments
from tests.evaluation.helpers import ROWS, start, version
user = get_user_model().objects.create_user("eve", password="x-long-password-1")
up = Integration.objects.create(name="Local", endpoint="{endpoint}", timeout_seconds=10)
a = CustomModel.objects.create(integration=up, name="A", model_id="alpha")
b = CustomModel.objects.create(integration=up, name="B", model_id="beta")
experiment = start(user, version(user), [a, b], concurrency=2)
print(experiment.pk)
"""
LOOK = """
from sandbox import experiments
from sandbox.models import Experiment
print(experiments.progress(Experiment.objects.get(pk="{pk}"))["status"])
"""


def _env(tmp_path, database) -> dict:
    return {**PROD_ENV, "DATABASE_URL": f"sqlite:///{database}", "LLM_ALLOW_LOOPBACK": "1",
            "EVALUATION_STALE_SECONDS": "2", "USAGE_SPOOL_DIR": str(tmp_path / "spool")}  # fmt: skip


def _worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--interval", "0.1", "--no-startup-delay"],
        cwd=ROOT, env={**clean_environ(), **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _results(database, pk) -> dict:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "select row, target, status from sandbox_experimentresult where experiment_id = ?",
            (pk.replace("-", ""),),
        ).fetchall()
        status = db.execute(
            "select status from sandbox_experiment where id = ?", (pk.replace("-", ""),)
        ).fetchone()
    return {"rows": rows, "status": status[0] if status else None}


def _wait(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"waited {seconds} s for {what}")


def test_an_experiment_survives_its_worker_being_killed_and_runs_no_finished_row_twice(
    tmp_path, upstream
):
    upstream.handler = answering(delay=0.15)
    database = tmp_path / "eval.sqlite3"
    env = _env(tmp_path, database)
    migrated = run_manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    seeded = run_manage("shell", "-c", SEED.format(endpoint=f"{upstream.url}/v1"), env=env)
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    pk = seeded.stdout.strip().splitlines()[-1]

    first = _worker(env)
    try:
        _wait(lambda: sum(s != "running" for *_, s in _results(database, pk)["rows"]) >= 10,
              60, "ten finished rows")  # fmt: skip
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finished_before = {(r, t) for r, t, s in _results(database, pk)["rows"] if s != "running"}
    assert 10 <= len(finished_before) < 40
    calls_before = len(upstream.handler.seen)

    time.sleep(2.5)  # the dead worker's heartbeat goes stale
    looked = run_manage("shell", "-c", LOOK.format(pk=pk), env=env)
    assert looked.stdout.split()[-1] == "queued", looked.stderr[-2000:]  # queued again
    second = _worker(env)
    try:
        _wait(lambda: _results(database, pk)["status"] == "done", 90, "the experiment to finish")
    finally:
        second.terminate()
        second.wait(10)

    results = _results(database, pk)["rows"]
    assert len(results) == 40 and all(s == "ok" for *_, s in results)
    sent = Counter(upstream.handler.seen)  # (model id, row word): requests the upstream had
    models = ["alpha", "beta"]
    for row, target in finished_before:
        assert sent[(models[target], f"w{row}")] == 1, f"row {row} on {models[target]} ran twice"
    assert len(sent) == 40
    in_flight = calls_before - len(finished_before)
    assert sum(sent.values()) - 40 <= max(in_flight, 0)  # only the killed calls, once more
