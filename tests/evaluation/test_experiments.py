"""Experiments run by the task in-process (the worker's own code, without its process):
every row on every target, scored, metered, within a budget, cancellable, on routes."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection

from integrations.models import Route, RouteTarget, UsageRecord
from sandbox import experiments
from sandbox.models import Experiment
from sandbox.tasks import Runner
from tests.evaluation.helpers import ROWS, answering, start, version

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_row_runs_on_every_model_scored_metered_and_aggregated(
    bob, two_models, upstream, immediate
):
    upstream.handler = answering(wrong_for="beta")
    experiment = start(bob, version(bob), two_models)
    experiment.refresh_from_db()
    assert experiment.status == "done"
    assert experiment.results.count() == 40 and not experiment.results.filter(status="failed")
    by_model = {a["target"]: a for a in experiments.aggregates(experiment)}
    assert (
        by_model["Alpha/Alpha model" if "Alpha model" in by_model else list(by_model)[0]][
            "pass_rate"
        ]
        == 1.0
    )
    assert list(by_model.values())[1]["pass_rate"] == 0.0
    assert UsageRecord.objects.filter(source="eval").count() == 40
    spent = sum(r.cost for r in experiment.results.all())
    assert experiment.spent == spent > 0
    assert len(upstream.handler.seen) == 40 == len(set(upstream.handler.seen))  # each once


def test_the_estimate_is_within_a_fifth_of_what_it_cost(bob, two_models, upstream, immediate):
    upstream.handler = answering()
    experiment = start(bob, version(bob), two_models, parameters={"max_tokens": 5})
    experiment.refresh_from_db()
    assert experiment.estimate is not None
    assert abs(experiment.estimate - experiment.spent) <= Decimal("0.2") * experiment.spent


def test_the_budget_cap_stops_the_run(bob, two_models, upstream, immediate):
    upstream.handler = answering()
    a, _ = two_models
    one_call = a.cost(10, 5)
    experiment = start(bob, version(bob), [a], parameters={"max_tokens": 5},
                       budget=Decimal(str(one_call)) * Decimal("6.5"), concurrency=1)  # fmt: skip
    experiment.refresh_from_db()
    assert experiment.status == "stopped"
    assert experiment.spent <= experiment.budget
    assert 4 <= experiment.results.count() < 20


def test_cancel_stops_a_running_experiment_and_no_call_starts_after(
    bob, two_models, upstream, request
):
    upstream.handler = answering(delay=0.2)
    experiment = start(bob, version(bob), two_models, concurrency=1)  # queued: no worker yet
    runner = threading.Thread(target=closing(Runner(str(experiment.pk)).run))
    runner.start()
    time.sleep(0.7)
    assert experiments.cancel(helpers_request(bob), experiment)
    runner.join(timeout=10)
    assert not runner.is_alive()
    calls = len(upstream.handler.seen)
    time.sleep(0.5)
    assert len(upstream.handler.seen) == calls < 40
    experiment.refresh_from_db()
    assert experiment.status == "cancelled"


def closing(step):
    """A thread's work, then its database connection back (a pooled one is not lost)."""

    def run():
        try:
            step()
        finally:
            connection.close()

    return run


def helpers_request(user):
    from tests.evaluation.helpers import request_of

    return request_of(user)


def test_a_route_is_evaluated_like_a_model_and_an_llm_judge_scores_through_structured_output(
    bob, two_models, upstream, immediate
):
    a, b = two_models
    upstream.handler = answering(judge={"score": 5, "reason": "exactly right"})
    route = Route.objects.create(name="words-route")
    RouteTarget.objects.create(route=route, model=b, position=0)
    judge = {"kind": "judge", "model": str(a.pk), "rubric": "Is {{output}} {{expected}}?"}
    experiment = start(bob, version(bob, ROWS[:3]), [("route", route)], scorers=[judge])
    experiment.refresh_from_db()
    assert experiment.status == "done"
    result = experiment.results.first()
    assert result.model_name == "Beta" and result.passed
    assert result.scores[0]["reason"] == "5/5: exactly right"
    judged = [r for r in upstream.requests if b'"json_schema"' in r.body]
    assert len(judged) == 3
    assert UsageRecord.objects.filter(source="eval", model=a).count() == 3  # the judge's calls


def test_a_bad_target_or_scorer_is_refused_before_anything_runs(bob, two_models, immediate):
    a, _ = two_models
    with pytest.raises(experiments.ExperimentError, match="1 to 8"):
        start(bob, version(bob), [])
    with pytest.raises(experiments.ExperimentError, match="picked twice"):
        start(bob, version(bob, name="Two"), [a, a])
    assert not Experiment.objects.exists()
