"""/api/v2/datasets and /api/v2/experiments: upload a dataset, start an experiment, read
its progress, aggregates and results (a CI job can gate a prompt change on a pass rate).
Validated by the pages' own forms and readers, written by the same services."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any, Literal

from django.db import transaction
from django.http import QueryDict
from django.shortcuts import get_object_or_404
from ninja import Field, Router
from ninja.errors import HttpError

from integrations import audit
from integrations.api.common import require_editor
from integrations.models import AuditAction
from integrations.schemas import Input
from sandbox import datasets, experiments, results
from sandbox.datasets import DatasetError, Mapping
from sandbox.eval_forms import SCORER_FIELDS, ExperimentForm
from sandbox.forms import ROUTE
from sandbox.models import Dataset, DatasetVersion, Experiment

router = Router(tags=["evaluation"])


class MappingIn(Input):
    variables: dict[str, str] = Field(description="Variable name: column.")
    expected: str = ""
    metadata: list[str] = Field(default_factory=list)


class DatasetIn(Input):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=2000)
    format: Literal["csv", "jsonl"] = "csv"
    content: str = Field(description="The file's text.", max_length=datasets.MAX_BYTES)
    mapping: MappingIn | None = Field(None, description="Guessed from the columns when left out.")


def _unprocessable(message: str, errors: list[dict]) -> HttpError:
    error = HttpError(422, message)
    error.errors = errors[:200]  # as a 422 of the request's own schema lists them
    return error


@router.post("datasets", response={201: dict}, summary="Upload a dataset (CSV or JSON Lines)")
def create_dataset(request, payload: DatasetIn):
    require_editor(request)
    if Dataset.objects.filter(name=payload.name).exists():
        raise _unprocessable(
            "A dataset by that name exists.", [{"field": "name", "message": "taken"}]
        )
    try:
        columns, records, errors = datasets.read(
            payload.content.encode(), f"upload.{payload.format}"
        )
    except DatasetError as exc:
        raise _unprocessable(str(exc), [{"field": "content", "message": str(exc)}]) from None
    mapping = datasets.guess(columns) if payload.mapping is None else Mapping(
        payload.mapping.variables, payload.mapping.expected, tuple(payload.mapping.metadata))  # fmt: skip
    rows, row_errors = datasets.rows(records, mapping)
    problems = sorted(errors + row_errors)
    if problems:
        raise _unprocessable(f"{len(problems)} row problem(s): nothing was imported.",
                             [{"row": line, "message": message} for line, message in problems])  # fmt: skip
    with transaction.atomic():
        dataset = Dataset.objects.create(
            name=payload.name, description=payload.description, owner=request.user
        )
        version = datasets.save_version(dataset, rows, request.user, "uploaded by the API")
    audit.record(
        request, AuditAction.DATASET, dataset, detail=f"uploaded v1: {len(rows)} rows (API)"
    )
    return 201, {
        "id": str(dataset.pk),
        "version": version.number,
        "version_id": str(version.pk),
        "rows": len(rows),
    }


class TargetIn(Input):
    model: uuid.UUID | None = None
    route: uuid.UUID | None = None


class ExperimentIn(Input):
    name: str = Field(min_length=1, max_length=100)
    dataset_id: uuid.UUID
    version: int | None = Field(None, description="The dataset version; the latest when left out.")
    prompt_version_id: uuid.UUID | None = None
    system: str = ""
    user: str = ""
    targets: list[TargetIn] = Field(min_length=1, max_length=8)
    scorers: list[dict[str, Any]] = Field(default_factory=list, max_length=len(SCORER_FIELDS) + 4)
    max_tokens: int | None = None
    temperature: float | None = None
    concurrency: int = 4
    budget: Decimal | None = None


def _form_data(payload: ExperimentIn, version: DatasetVersion) -> QueryDict:
    data = QueryDict(mutable=True)
    plain = {"name": payload.name, "dataset_version": str(version.pk), "system_prompt": payload.system,
             "user_prompt": payload.user, "concurrency": payload.concurrency,
             "prompt_version": payload.prompt_version_id or "", "max_tokens": payload.max_tokens,
             "temperature": payload.temperature, "budget": payload.budget}  # fmt: skip
    for key, value in plain.items():
        data[key] = "" if value is None else str(value)
    for target in payload.targets:
        data.appendlist(
            "targets", f"{ROUTE}{target.route}" if target.route else str(target.model or "")
        )
    for spec in payload.scorers:
        kind = str(spec.get("kind", ""))
        data[f"scorer-{kind}"] = "1"
        for setting in SCORER_FIELDS.get(kind, ()):
            value = spec.get(setting, "")
            data[f"{kind}-{setting}"] = (
                json.dumps(value) if isinstance(value, dict | list) else str(value)
            )
    return data


@router.post("experiments", response={201: dict}, summary="Start an experiment")
def create_experiment(request, payload: ExperimentIn):
    dataset = get_object_or_404(Dataset, pk=payload.dataset_id)
    versions = dataset.versions.order_by("-number")
    version = (versions.filter(number=payload.version) if payload.version else versions).first()
    if version is None:
        raise _unprocessable(
            "No such dataset version.", [{"field": "version", "message": "not found"}]
        )
    form = ExperimentForm(_form_data(payload, version), user=request.user)
    if not form.is_valid():
        errors = [{"field": f or "scorers", "message": str(e[0])} for f, e in form.errors.items()]
        errors += [{"field": f"scorers.{k}", "message": m} for k, m in form.scorer_errors.items()]
        raise _unprocessable(
            f"Invalid request: {errors[0]['field']}: {errors[0]['message']}", errors
        )
    try:
        experiment = experiments.create(request, **form.experiment_fields())
    except experiments.ExperimentError as exc:
        raise _unprocessable(str(exc), [{"field": "targets", "message": str(exc)}]) from None
    return 201, _summary(experiment)


def _summary(experiment: Experiment) -> dict:
    experiment.refresh_from_db()
    progress = experiments.progress(experiment)
    money = {k: float(progress[k]) for k in ("spent",)}
    return {
        "id": str(experiment.pk), "name": experiment.name, "status": experiment.status,
        "estimate": float(experiment.estimate) if experiment.estimate is not None else None,
        "progress": {k: progress[k] for k in ("total", "done", "errors", "seconds_left", "percent")} | money,
        "aggregates": [a | {"cost": float(a["cost"]) if a["cost"] is not None else None}
                       for a in experiments.aggregates(experiment)],
    }  # fmt: skip


@router.get(
    "experiments/{experiment_id}", response=dict, summary="An experiment's progress and aggregates"
)
def get_experiment(request, experiment_id: uuid.UUID):
    return _summary(get_object_or_404(Experiment, pk=experiment_id))


@router.get("experiments/{experiment_id}/results", response=list[dict], summary="Every result")
def get_results(request, experiment_id: uuid.UUID):
    experiment = get_object_or_404(
        Experiment.objects.select_related("dataset_version"), pk=experiment_id
    )
    return json.loads(results.export(experiment, "json")[0])
