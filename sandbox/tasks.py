"""Background tasks (Django's tasks API, django-tasks on Django 5.2): an experiment's run.

One task runs one experiment to its end on one worker: `concurrency` threads per target,
each taking that target's next row. A call goes through the Sandbox's own call
(services.called: a model, or a route with its failover) and is scored. Nothing is
written per call: a keeper thread writes the finished results in batches (a result is
inserted once, when it is finished; a row already there is never sent again), spools
and batches the usage rows, beats the heartbeat and reads the status, so Cancel stops
the run within a second and no new call starts after it.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
import uuid
from decimal import Decimal

from django.db import connection
from django.utils import timezone
from django_tasks import task

from integrations import ratelimit
from integrations.gateway import metering, routed, routing
from integrations.llm import client
from integrations.llm.chat import Prompt, text_message
from integrations.llm.config import CallResult, counted
from integrations.llm.errors import LLMError
from integrations.models import Route
from sandbox import experiments, scorers, services
from sandbox.models import Experiment, ExperimentResult, ExperimentStatus

KEEP_EVERY = 0.5  # seconds between the keeper's writes
GOAL_SECONDS = 5.0  # how long a target's configuration is reused before it is read again
RATE_BATCH = 8  # calls a thread counts against the rate limit at once
MAX_WAIT = 60.0


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
        self.done = threading.Event()
        self.why = ""  # cancelled | budget
        self.lock = threading.Lock()
        self.finished: list[ExperimentResult] = []  # results waiting for the keeper
        self.goals: dict = {}  # target or judge key: (read at, goal)

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
        self.spent = experiments.spent(self.experiment)  # what finished rows cost before
        self.held = Decimal(0)  # the budget held back for calls in flight
        queues = [queue.SimpleQueue() for _ in self.experiment.targets]
        for row, target in experiments.pending(self.experiment):
            queues[target].put(row)
        keeper = threading.Thread(target=self._keep, daemon=True)
        keeper.start()
        threads = [
            threading.Thread(target=self._drain, args=(t, jobs), daemon=True)
            for t, jobs in enumerate(queues)
            for _ in range(self.experiment.concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.done.set()
        keeper.join()
        return self._finish()

    # --- the keeper: writes, heartbeat, cancel -------------------------------------------

    def _keep(self) -> None:
        last_beat = 0.0
        try:
            while not self.done.wait(KEEP_EVERY):
                self._write()
                if time.monotonic() - last_beat >= experiments.HEARTBEAT / 2:
                    last_beat = time.monotonic()
                    self._beat()
                status = (
                    Experiment.objects.filter(pk=self.pk).values_list("status", flat=True).first()
                )
                if status != ExperimentStatus.RUNNING:
                    self.why = self.why or "cancelled"
                    self.stop.set()
            self._write()
            self._beat()
            metering.written()
        finally:
            connection.close()

    def _beat(self) -> None:
        """The heartbeat, with what the run has spent (this worker alone runs it)."""
        Experiment.objects.filter(pk=self.pk).update(heartbeat_at=timezone.now(), spent=self.spent)

    def _write(self) -> None:
        with self.lock:
            batch, self.finished = self.finished, []
        if batch:
            ExperimentResult.objects.bulk_create(batch, ignore_conflicts=True)

    def _finish(self) -> str:
        status = {"cancelled": None, "budget": ExperimentStatus.STOPPED}.get(
            self.why, ExperimentStatus.DONE
        )
        if status is not None:
            Experiment.objects.filter(pk=self.pk, status=ExperimentStatus.RUNNING).update(
                status=status, finished_at=timezone.now()
            )
        return self.why or "done"

    # --- limits ------------------------------------------------------------------------------

    def _reserve(self) -> bool:
        """Hold back one call's estimated cost; False (and the run stops) when the budget
        cannot take it."""
        budget = self.experiment.budget
        if budget is None:
            return True
        with self.lock:
            if self.spent + self.held + self.each > budget:
                self.why = self.why or "budget"
                self.stop.set()
                return False
            self.held += self.each
        return True

    def _settle(self, cost: Decimal | None) -> None:
        with self.lock:
            if self.experiment.budget is not None:
                self.held -= self.each
            self.spent += cost or 0

    def _rate(self, allowance: list) -> bool:
        """Count calls against the owner's evaluation rate, RATE_BATCH at a time; wait
        (never fail) while over it."""
        if allowance[0] > 0:
            allowance[0] -= 1
            return True
        limit, window = experiments.rate_limit()
        while not self.stop.is_set():
            wait = ratelimit.hit(
                f"eval-calls:{self.experiment.owner_id}", RATE_BATCH, limit, window
            )
            if wait is None:
                allowance[0] = RATE_BATCH - 1
                return True
            self.stop.wait(min(MAX_WAIT, max(0.05, ratelimit.wait_seconds(wait))))
        return False

    # --- one target's rows -------------------------------------------------------------------

    def _drain(self, target: int, jobs: queue.SimpleQueue) -> None:
        allowance = [0]
        try:
            while not self.stop.is_set():
                try:
                    row = jobs.get_nowait()
                except queue.Empty:
                    return
                if not self._rate(allowance) or not self._reserve():
                    return
                cost = None
                try:
                    cost = self._call(row, target)
                finally:
                    self._settle(cost)
        finally:
            connection.close()

    def _goal(self, key, load):
        """A target's configuration, read again every GOAL_SECONDS (a change or a
        disabled model reaches a running experiment within seconds)."""
        now = time.monotonic()
        found = self.goals.get(key)
        if found is None or now - found[0] > GOAL_SECONDS:
            try:
                found = self.goals[key] = (now, load())
            finally:  # up to 256 threads: none may keep a database connection between loads
                connection.close()
        return found[1]

    def _target(self, target: dict, prompt: Prompt):
        if "route" in target:

            def load():
                route = Route.objects.filter(pk=target["route"], enabled=True)
                route = route.prefetch_related("targets__model__integration").first()
                if route is None:
                    return None
                spec = routing.spec_of(route)
                return spec, routing.goals_of(spec)

            loaded = self._goal(("route", target["route"]), load)
            if loaded is None:
                return None
            spec, goals = loaded
            return routed.Routed(spec, routed.Ask(prompt, False, spec.name), goals)
        return self._goal(("model", target["model"]), lambda: services.target(target["model"]))

    def _call(self, row_index: int, target_index: int) -> Decimal | None:
        experiment, row = self.experiment, self.rows[row_index]
        target = experiment.targets[target_index]
        prompt = experiments.prompt_for(experiment, row)
        goal = self._target(target, prompt)
        started = time.perf_counter()
        answer = (
            services.called(goal, prompt)
            if goal is not None
            else CallResult(ok=False, error=_gone(target))
        )
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
        judged = [Decimal(0)]
        scores = [] if not answer.ok else [
            scorers.score(spec, outcome, lambda s, o: self._judge(s, o, judged)) for spec in experiment.scorers
        ]  # fmt: skip
        result = ExperimentResult(
            experiment_id=self.pk, row=row_index, target=target_index,
            status="ok" if answer.ok else "failed", output=answer.content,
            scores=[s.as_dict() for s in scores], passed=all(s.passed for s in scores) if scores else None,
            score=_mean([s.value for s in scores if s.value is not None]),
            latency_ms=latency, cost=cost, judge_cost=judged[0] or None,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            model_name=model.name if model is not None else target["name"], worker=self.worker,
        )  # fmt: skip
        if not answer.ok:
            result.error_kind, result.error_message = answer.error.kind, answer.error.message[:2000]
        with self.lock:
            self.finished.append(result)
        return (cost or 0) + judged[0]

    def _meter(
        self, model, answer: CallResult, prompt_tokens, completion_tokens, estimated, cost, latency
    ):
        metering.record_later(
            source="eval", user=self.experiment.owner, model=model,
            model_name=model.name if model is not None else "", prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens, estimated=estimated, cost=cost,
            latency_ms=latency, ok=answer.ok, status_code=answer.status_code,
            error_kind=answer.error.kind if answer.error else "",
        )  # fmt: skip

    def _judge(self, spec: dict, outcome: scorers.Outcome, judged: list) -> scorers.Score:
        """An LLM judge's verdict, through structured output; metered and priced."""
        goal = self._goal(("judge", spec["model"]), lambda: services.target(spec["model"]))
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
        judged[0] += cost or 0
        if not answer.ok:
            return scorers.Score(
                scorers.name_of(spec),
                None,
                False,
                f"The judge failed: {answer.error.message[:300]}",
            )
        return scorers.judged(spec, answer.content)


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def _answering_model(goal):
    if goal is None:
        return None
    if isinstance(goal, routed.Routed):
        return goal.goal.model if goal.goal is not None else None
    return goal.model


def _gone(target: dict) -> LLMError:
    what = "route" if "route" in target else "model"
    return LLMError("unsupported", f"The {what} {target['name']} is disabled or gone.")
