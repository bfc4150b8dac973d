"""Experiments: a dataset version × a prompt × 1 to 8 models or routes, scored row by
row. Started here, run by a background task (sandbox/tasks.py) on any `db_worker`.

A row's result is written once it is finished, and a worker that resumes an experiment
skips every row that has one: a killed worker costs the calls it had in flight (and the
results it had not yet written), never a finished row again. A running experiment's worker beats every
HEARTBEAT seconds; one silent for EVALUATION_STALE_SECONDS is taken to be dead, and the
next look at the experiment (its page, the API) queues it again.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Avg, Count, Q, Sum
from django.utils import timezone

from integrations import audit
from integrations.gateway import routing
from integrations.llm.chat import OutputFormat, Prompt, text_message
from integrations.llm.config import estimate_tokens
from integrations.models import AuditAction, CustomModel, Route
from sandbox import scorers, tools
from sandbox.forms import fill
from sandbox.models import Experiment, ExperimentResult, ExperimentStatus
from sandbox.models import evaluation as rows_model

HEARTBEAT = 2.0
PER_MESSAGE, PER_REPLY = 4, 3  # a chat format's framing, in tokens
DEFAULT_MAX_TOKENS = 256  # what an estimate assumes when nothing caps the answer
ACTIVE = (ExperimentStatus.QUEUED, ExperimentStatus.RUNNING)


class ExperimentError(ValueError):
    pass


# --- what each row sends ---------------------------------------------------------------


def prompt_for(experiment: Experiment, row: dict) -> Prompt:
    values = {k: str(v) for k, v in (row.get("variables") or {}).items()}
    base = Prompt(
        system=fill(experiment.system_prompt, values),
        messages=(text_message("user", fill(experiment.user_prompt, values)),),
        params=dict(experiment.parameters or {}),
    )
    return replace(base, **tools.prompt_parts(experiment.options or {}))


def check_targets(picked: list[dict]) -> list[dict]:
    """The targets as stored: [{"model": id, "name"}] or [{"route": id, "name"}]."""
    if not 1 <= len(picked) <= rows_model.MAX_MODELS:
        raise ExperimentError(f"Pick 1 to {rows_model.MAX_MODELS} models or routes.")
    out = []
    for item in picked:
        if "route" in item:
            route = Route.objects.filter(pk=item["route"], enabled=True).first()
            if route is None:
                raise ExperimentError("A picked route is disabled or gone.")
            out.append({"route": str(route.pk), "name": route.name})
        else:
            model = CustomModel.objects.filter(pk=item.get("model"), enabled=True,
                                               kind="chat").select_related("integration").first()  # fmt: skip
            if model is None:
                raise ExperimentError("A picked model is disabled, gone or not a chat model.")
            out.append({"model": str(model.pk), "name": f"{model.integration.name}/{model.name}"})
    if len({tuple(sorted(t.items())) for t in out}) != len(out):
        raise ExperimentError("A model or route is picked twice.")
    return out


def _priced_model(target: dict):
    """The model whose prices an estimate uses: the model, or a route's dearest target."""
    if "model" in target:
        return CustomModel.objects.filter(pk=target["model"]).first()
    route = (
        Route.objects.filter(pk=target["route"])
        .prefetch_related("targets__model__integration")
        .first()
    )
    if route is None:
        return None
    goal = routing.pricing_target(routing.spec_of(route))
    return goal.model if goal is not None else None


def estimate(experiment: Experiment) -> Decimal | None:
    """What the experiment should cost, from the targets' prices, each row's prompt and
    the answer's cap (max_tokens, else the model's, else DEFAULT_MAX_TOKENS). None when a
    target has no prices."""
    rows = experiment.dataset_version.rows
    prompts = [_prompt_tokens(prompt_for(experiment, row)) for row in rows]
    total = Decimal(0)
    for target in experiment.targets:
        model = _priced_model(target)
        if model is None:
            return None
        cap = (
            (experiment.parameters or {}).get("max_tokens")
            or model.max_tokens
            or DEFAULT_MAX_TOKENS
        )
        cost = model.cost(sum(prompts), cap * len(rows))
        if cost is None:
            return None
        total += Decimal(str(cost))
    return total.quantize(Decimal("0.000001"))


def _prompt_tokens(prompt: Prompt) -> int:
    """A prompt's tokens as a chat API counts them: its text, and the framing of each
    message and of the reply (about 4 and 3 tokens, as OpenAI's counting guide has it)."""
    messages = len(prompt.messages) + (1 if prompt.system else 0)
    return estimate_tokens(prompt.text()) + PER_MESSAGE * messages + PER_REPLY


def per_call(experiment: Experiment) -> Decimal:
    """The estimate of one call: what the budget holds back while a call is out."""
    if experiment.estimate is None or not experiment.total:
        return Decimal(0)
    return experiment.estimate / experiment.total


# --- starting, stopping, looking ---------------------------------------------------------


@transaction.atomic
def create(request, **fields) -> Experiment:
    """Write an experiment (its estimate included) and queue it once the row is in."""
    fields["targets"] = check_targets(fields["targets"])
    fields["scorers"] = [scorers.validate(s) for s in fields.get("scorers", ())]
    experiment = Experiment(owner=request.user, **fields)
    experiment.estimate = estimate(experiment)
    experiment.save()
    audit.record(request, AuditAction.EXPERIMENT, experiment, detail=f"started {experiment.name}")
    transaction.on_commit(lambda: enqueue(experiment))
    return experiment


def enqueue(experiment: Experiment) -> None:
    from sandbox.tasks import run_experiment

    result = run_experiment.enqueue(str(experiment.pk))
    Experiment.objects.filter(pk=experiment.pk).update(task_id=str(result.id)[:64])


def cancel(request, experiment: Experiment) -> bool:
    changed = Experiment.objects.filter(pk=experiment.pk, status__in=ACTIVE).update(
        status=ExperimentStatus.CANCELLED, finished_at=timezone.now()
    )
    if changed:
        audit.record(request, AuditAction.EXPERIMENT, experiment, detail="cancelled")
    return bool(changed)


def revive(experiment: Experiment) -> bool:
    """Queue a running experiment again when its worker has gone silent (killed, its host
    lost); the next worker resumes it. True when it was queued again."""
    silent = timezone.now() - timedelta(seconds=settings.EVALUATION_STALE_SECONDS)
    changed = Experiment.objects.filter(
        pk=experiment.pk, status=ExperimentStatus.RUNNING, heartbeat_at__lt=silent
    ).update(status=ExperimentStatus.QUEUED, heartbeat_at=timezone.now())
    if changed:
        enqueue(experiment)
    return bool(changed)


def progress(experiment: Experiment) -> dict:
    """Rows done, errors, cost so far and time left; a dead worker's experiment is queued
    again on the way."""
    if experiment.status == ExperimentStatus.RUNNING:
        revive(experiment)
        experiment.refresh_from_db()
    counts = experiment.results.aggregate(
        done=Count("pk"), errors=Count("pk", filter=Q(status="failed")),
        spent=Sum("cost"), judged=Sum("judge_cost"),
    )  # fmt: skip
    total, done = experiment.total, counts["done"]
    left = None
    if experiment.status == ExperimentStatus.RUNNING and done and experiment.heartbeat_at:
        began = (
            experiment.results.order_by("updated_at").values_list("updated_at", flat=True).first()
        )
        if began is not None:
            rate = done / max((timezone.now() - began).total_seconds(), 0.001)
            left = math.ceil((total - done) / rate) if rate else None
    return {
        "total": total, "done": done, "errors": counts["errors"],
        "spent": (counts["spent"] or Decimal(0)) + (counts["judged"] or Decimal(0)),
        "seconds_left": left,
        "percent": round(100 * done / total) if total else 100,
        "status": experiment.status, "finished": experiment.status not in ACTIVE,
    }  # fmt: skip


def aggregates(experiment: Experiment) -> list[dict]:
    """Per target: mean score, pass rate, p50/p95 latency, total cost, errors. Two
    queries, whatever the number of rows and targets."""
    done = experiment.results
    grouped = {
        g["target"]: g
        for g in done.values("target").annotate(
            n=Count("pk"), errors=Count("pk", filter=Q(status="failed")),
            n_passed=Count("pk", filter=Q(passed=True)),
            n_scored=Count("pk", filter=Q(passed__isnull=False)),
            cost=Sum("cost"), tokens=Sum("completion_tokens"), mean=Avg("score"),
        )
    }  # fmt: skip
    latencies: dict[int, list] = {}
    for target, ms in (
        done.exclude(latency_ms=None).order_by("latency_ms").values_list("target", "latency_ms")
    ):
        latencies.setdefault(target, []).append(ms)
    out = []
    for index, target in enumerate(experiment.targets):
        g = grouped.get(index, {"n": 0, "errors": 0, "n_passed": 0, "n_scored": 0, "cost": None,
                                "tokens": None, "mean": None})  # fmt: skip
        ms = latencies.get(index, [])
        out.append({
            "target": target["name"], "index": index, "n": g["n"], "errors": g["errors"],
            "pass_rate": g["n_passed"] / g["n_scored"] if g["n_scored"] else None,
            "mean_score": g["mean"], "p50": _pct(ms, 50), "p95": _pct(ms, 95),
            "cost": g["cost"], "tokens": g["tokens"],
        })  # fmt: skip
    return out


def _pct(values: list, pct: int):
    if not values:
        return None
    return values[min(len(values) - 1, math.ceil(pct / 100 * len(values)) - 1)]


def rate_limit() -> tuple[int, int]:
    return settings.EVALUATION_RATE_LIMIT


def pending(experiment: Experiment) -> list[tuple[int, int]]:
    """(row, target) pairs still to run, interleaved so that every target moves along."""
    finished = set(
        ExperimentResult.objects.filter(experiment=experiment).values_list("row", "target")
    )
    count = len(experiment.dataset_version.rows)
    return [(r, t) for r in range(count) for t in range(len(experiment.targets))
            if (r, t) not in finished]  # fmt: skip


def spent(experiment: Experiment) -> Decimal:
    """What the experiment's finished rows cost, their judges' calls included."""
    sums = experiment.results.aggregate(cost=Sum("cost"), judged=Sum("judge_cost"))
    return (sums["cost"] or Decimal(0)) + (sums["judged"] or Decimal(0))


def judge_format(spec: dict) -> OutputFormat:
    schema = scorers.JUDGE_PASS_FAIL if spec["scale"] == "pass_fail" else scorers.JUDGE_SCHEMA
    return OutputFormat("json_schema", schema, "verdict", True)
