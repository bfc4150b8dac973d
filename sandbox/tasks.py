"""Background tasks (Django's tasks API, django-tasks on Django 5.2): an experiment's run.

One task runs one experiment to its end on one worker, `concurrency` calls at once per
target. Each call goes through the Sandbox's own call (services.called: a model, or a
route with its failover), is metered as an evaluation call, scored, and written before
the next row is claimed. A monitor thread beats the heartbeat and reads the status, so
Cancel stops the run within HEARTBEAT seconds and no new call starts after it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from django.db import IntegrityError, close_old_connections, connection
from django.db.models import F
from django.utils import timezone
from django_tasks import task

from integrations import ratelimit
from integrations.gateway import metering
from integrations.llm import client
from integrations.llm.chat import Prompt, text_message
from integrations.llm.config import CallResult, counted
from sandbox import experiments, scorers, services
from sandbox.models import Experiment, ExperimentResult, ExperimentStatus

MAX_WAIT = 60.0  # the longest a rate-limited call waits before it tries again


@task()
def run_experiment(experiment_id: str) -> str:
    try:
        return Runner(experiment_id).run()
    finally:
        connection.close()


class Runner:
    def __init__(self, experiment_id: str):
        self.pk = experiment_id
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stop = threading.Event()
        self.why = ""  # cancelled | budget
        self.lock = threading.Lock()
        self.held = Decimal(0)  # the budget held back for calls in flight

    def run(self) -> str:
        began = Experiment.objects.filter(pk=self.pk, status__in=experiments.ACTIVE).update(
            status=ExperimentStatus.RUNNING, heartbeat_at=timezone.now()
        )
        if not began:
            return "not runnable"
        self.experiment = Experiment.objects.select_related("dataset_version", "owner").get(
            pk=self.pk
        )
        self.rows = self.experiment.dataset_version.rows
        self.each = experiments.per_call(self.experiment)
        monitor = threading.Thread(target=self._monitor, daemon=True)
        monitor.start()
        jobs = experiments.pending(self.experiment)
        slots = [threading.Semaphore(self.experiment.concurrency) for _ in self.experiment.targets]
        try:
            width = self.experiment.concurrency * len(self.experiment.targets)
            with ThreadPoolExecutor(max_workers=max(1, min(width, 64))) as pool:
                for _ in pool.map(lambda job: self._one(job, slots[job[1]]), jobs):
                    pass
        finally:
            self.stop.set()
            monitor.join()
        return self._finish()

    # --- the run's state -------------------------------------------------------------------

    def _monitor(self) -> None:
        """Beat the heartbeat; notice a cancel."""
        try:
            while not self.stop.wait(experiments.HEARTBEAT):
                Experiment.objects.filter(pk=self.pk).update(heartbeat_at=timezone.now())
                status = (
                    Experiment.objects.filter(pk=self.pk).values_list("status", flat=True).first()
                )
                if status != ExperimentStatus.RUNNING:
                    self.why = self.why or "cancelled"
                    self.stop.set()
        finally:
            connection.close()

    def _finish(self) -> str:
        status = {"cancelled": None, "budget": ExperimentStatus.STOPPED}.get(
            self.why, ExperimentStatus.DONE
        )
        if status is not None:
            Experiment.objects.filter(pk=self.pk, status=ExperimentStatus.RUNNING).update(
                status=status, finished_at=timezone.now()
            )
        return self.why or "done"

    def _reserve(self) -> bool:
        """Hold back one call's estimated cost; False (and the run stops) when the budget
        cannot take it."""
        budget = self.experiment.budget
        if budget is None:
            return True
        with self.lock:
            spent = Experiment.objects.filter(pk=self.pk).values_list("spent", flat=True).first()
            if spent + self.held + self.each > budget:
                self.why = self.why or "budget"
                self.stop.set()
                return False
            self.held += self.each
        return True

    def _release(self, cost: Decimal | None) -> None:
        with self.lock:
            self.held -= self.each
        if cost:
            Experiment.objects.filter(pk=self.pk).update(spent=F("spent") + cost)

    # --- one row on one target -----------------------------------------------------------------

    def _claim(self, row: int, target: int) -> ExperimentResult | None:
        try:
            return ExperimentResult.objects.create(
                experiment_id=self.pk, row=row, target=target, worker=self.worker
            )
        except IntegrityError:  # claimed before: by a worker that died in its call
            claimed = ExperimentResult.objects.filter(
                experiment_id=self.pk, row=row, target=target, status="running"
            ).update(worker=self.worker)
            if not claimed:
                return None
            return ExperimentResult.objects.get(experiment_id=self.pk, row=row, target=target)

    def _wait_for_rate(self) -> bool:
        limit, window = experiments.rate_limit()
        owner = self.experiment.owner_id
        while not self.stop.is_set():
            wait = ratelimit.hit(f"eval-calls:{owner}", 1, limit, window)
            if wait is None:
                return True
            self.stop.wait(min(MAX_WAIT, max(0.05, ratelimit.wait_seconds(wait))))
        return False

    def _one(self, job: tuple[int, int], slot: threading.Semaphore) -> None:
        row_index, target_index = job
        with slot:
            if self.stop.is_set() or not self._wait_for_rate() or not self._reserve():
                return
            cost = None
            try:
                result = self._claim(row_index, target_index)
                if result is not None:
                    cost = self._call(
                        result, self.rows[row_index], self.experiment.targets[target_index]
                    )
            finally:
                self._release(cost)
                close_old_connections()
                connection.close()  # a pool thread's connection must not outlive the run

    def _call(self, result: ExperimentResult, row: dict, target: dict) -> Decimal | None:
        experiment = self.experiment
        prompt = experiments.prompt_for(experiment, row)
        goal = experiments.goal_for(target, prompt)
        started = time.perf_counter()
        if goal is None:
            answer = CallResult(ok=False, error=_gone(target))
        else:
            answer = services.called(goal, prompt)
        model = _answering_model(goal)
        prompt_tokens, completion_tokens, estimated = counted(
            answer.usage, prompt.text(), answer.content
        )
        cost = model.cost(prompt_tokens, completion_tokens) if model is not None else None
        cost = Decimal(str(cost)) if cost is not None else None
        latency = answer.latency_ms or round((time.perf_counter() - started) * 1000)
        self._meter(model, answer, prompt_tokens, completion_tokens, estimated, cost, latency)
        outcome = scorers.Outcome(
            output=answer.content, expected=str(row.get("expected") or ""),
            input=prompt.user, latency_ms=latency, cost=float(cost) if cost is not None else None,
        )  # fmt: skip
        scores = [] if not answer.ok else [
            scorers.score(spec, outcome, self._judge) for spec in experiment.scorers
        ]  # fmt: skip
        result.status = "ok" if answer.ok else "failed"
        result.output = answer.content
        result.scores = [s.as_dict() for s in scores]
        result.passed = all(s.passed for s in scores) if scores else None
        result.latency_ms, result.cost = latency, cost
        result.prompt_tokens, result.completion_tokens = prompt_tokens, completion_tokens
        result.model_name = model.name if model is not None else target["name"]
        if not answer.ok:
            result.error_kind, result.error_message = answer.error.kind, answer.error.message[:2000]
        result.save()
        return cost

    def _meter(
        self, model, answer: CallResult, prompt_tokens, completion_tokens, estimated, cost, latency
    ):
        metering.record(
            None, source="eval", user=self.experiment.owner, model=model,
            model_name=model.name if model is not None else "", prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens, estimated=estimated, cost=cost,
            latency_ms=latency, ok=answer.ok, status_code=answer.status_code,
            error_kind=answer.error.kind if answer.error else "",
        )  # fmt: skip

    def _judge(self, spec: dict, outcome: scorers.Outcome) -> scorers.Score:
        """An LLM judge's verdict, through structured output; metered and priced."""
        goal = services.target(spec["model"])
        if goal is None:
            return scorers.Score(
                scorers.name_of(spec), None, False, "The judging model is disabled or gone."
            )
        prompt = Prompt(
            messages=(text_message("user", scorers.rubric_text(spec, outcome)),),
            params={"temperature": 0}, output=experiments.judge_format(spec),
        )  # fmt: skip
        answer = goal.failed or client.call(goal.config, prompt)
        prompt_tokens, completion_tokens, estimated = counted(
            answer.usage, prompt.text(), answer.content
        )
        cost = goal.model.cost(prompt_tokens, completion_tokens)
        cost = Decimal(str(cost)) if cost is not None else None
        self._meter(
            goal.model, answer, prompt_tokens, completion_tokens, estimated, cost, answer.latency_ms
        )
        if cost:
            Experiment.objects.filter(pk=self.pk).update(spent=F("spent") + cost)
        if not answer.ok:
            return scorers.Score(
                scorers.name_of(spec),
                None,
                False,
                f"The judge failed: {answer.error.message[:300]}",
            )
        return scorers.judged(spec, answer.content)


def _answering_model(goal):
    if goal is None:
        return None
    if isinstance(goal, experiments.routed.Routed):
        return goal.goal.model if goal.goal is not None else None
    return goal.model


def _gone(target: dict):
    from integrations.llm.errors import LLMError

    what = "route" if "route" in target else "model"
    return LLMError("unsupported", f"The {what} {target['name']} is disabled or gone.")
