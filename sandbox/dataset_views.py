"""Datasets: the list, an upload in two steps (the file; then which column is what, with
every bad row named before anything is imported), a dataset's rows and versions, export,
and a Sandbox run added as a row. Everyone reads; Editors and Admins change datasets."""

from __future__ import annotations

import secrets

from django.contrib import messages
from django.core.cache import cache
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations import audit
from integrations.models import AuditAction
from integrations.team.roles import can_edit, editor_required
from integrations.views.helpers import download, go
from sandbox import datasets
from sandbox.datasets import DatasetError, Mapping
from sandbox.eval_forms import UploadForm
from sandbox.forms import is_uuid
from sandbox.models import Dataset
from sandbox.views import _visible_runs

UPLOAD_SECONDS = 3600  # how long an upload waits for its mapping
USES = (("variable", "a variable"), ("expected", "the expected output"),
        ("metadata", "metadata"), ("ignore", "ignored"))  # fmt: skip


@require_GET
def dataset_list(request):
    found = Dataset.objects.select_related("owner").prefetch_related("versions")
    return render(
        request, "sandbox/datasets.html", {"datasets": found, "can_edit": can_edit(request.user)}
    )


def _mapping_rows(columns: list[str], data=None) -> list[dict]:
    """The mapping step's rows: each column, what it is used as, its variable name."""
    guessed = datasets.guess(columns)
    rows = []
    for i, column in enumerate(columns):
        use = (
            "expected"
            if column == guessed.expected
            else "variable"
            if column in guessed.variables.values()
            else "metadata"
        )
        name = column
        if data is not None:
            use, name = data.get(f"use-{i}", use), data.get(f"name-{i}", name).strip()
        rows.append({"index": i, "column": column, "use": use, "name": name})
    return rows


def _mapping_of(rows: list[dict]) -> Mapping:
    return Mapping(
        variables={r["name"]: r["column"] for r in rows if r["use"] == "variable"},
        expected=next((r["column"] for r in rows if r["use"] == "expected"), ""),
        metadata=tuple(r["column"] for r in rows if r["use"] == "metadata"),
    )


@require_http_methods(["GET", "POST"])
@editor_required
def dataset_upload(request):
    token = request.POST.get("token", "")
    if token:
        return _map(request, token)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            columns, records, errors = datasets.read(
                upload.read(datasets.MAX_BYTES + 1), upload.name
            )
        except DatasetError as exc:
            form.add_error("file", str(exc))
        else:
            token = secrets.token_urlsafe(16)
            kept = {"name": form.cleaned_data["name"], "description": form.cleaned_data["description"],
                    "columns": columns, "records": records, "read_errors": errors, "user": request.user.pk}  # fmt: skip
            cache.set(f"dataset-upload:{token}", kept, UPLOAD_SECONDS)
            return _mapping_page(request, token, kept, _mapping_rows(columns), [])
    return render(request, "sandbox/dataset_upload.html", {"form": form})


def _mapping_page(request, token, kept, rows, errors):
    ctx = {"token": token, "kept": kept, "rows": rows, "uses": USES, "errors": errors[:200],
           "more_errors": max(0, len(errors) - 200), "preview": kept["records"][:5]}  # fmt: skip
    return render(request, "sandbox/dataset_upload.html", ctx)


def _map(request, token: str):
    kept = cache.get(f"dataset-upload:{token}")
    if kept is None or kept["user"] != request.user.pk:
        messages.error(request, "That upload has expired: upload the file again.")
        return go(request, reverse("dataset-upload"))
    rows = _mapping_rows(kept["columns"], request.POST)
    new_rows, errors = datasets.rows(kept["records"], _mapping_of(rows))
    errors = sorted(kept["read_errors"] + errors)
    if errors or Dataset.objects.filter(name=kept["name"]).exists():
        if not errors:
            errors = [(0, "A dataset by that name was made meanwhile: upload under another name.")]
        return _mapping_page(request, token, kept, rows, errors)
    with transaction.atomic():
        dataset = Dataset.objects.create(
            name=kept["name"], description=kept["description"], owner=request.user
        )
        version = datasets.save_version(dataset, new_rows, request.user, "uploaded")
    cache.delete(f"dataset-upload:{token}")
    audit.record(
        request,
        AuditAction.DATASET,
        dataset,
        detail=f"uploaded v{version.number}: {len(new_rows)} rows",
    )
    messages.success(request, f"Dataset {dataset.name} saved: {len(new_rows)} rows.")
    return go(request, reverse("dataset-detail", args=[dataset.pk]))


def _version(dataset: Dataset, number: str):
    versions = dataset.versions.order_by("-number")
    found = versions.filter(number=int(number)).first() if number.isdigit() else versions.first()
    if found is None:
        raise Http404("No such version.")
    return found


@require_GET
def dataset_detail(request, pk):
    dataset = get_object_or_404(Dataset.objects.select_related("owner"), pk=pk)
    version = (
        _version(dataset, request.GET.get("version", "")) if dataset.versions.exists() else None
    )
    ctx = {"dataset": dataset, "version": version, "can_edit": can_edit(request.user),
           "versions": dataset.versions.only("id", "number", "message", "created_at"),
           "rows": (version.rows[:200] if version else []),
           "names": sorted({n for r in (version.rows if version else []) for n in r["variables"]})}  # fmt: skip
    return render(request, "sandbox/dataset_detail.html", ctx)


@require_GET
def dataset_export(request, pk):
    dataset = get_object_or_404(Dataset, pk=pk)
    version = _version(dataset, request.GET.get("version", ""))
    fmt = "jsonl" if request.GET.get("format") == "jsonl" else "csv"
    body, kind = datasets.export(version, fmt)
    return download(body, kind, f"dataset-v{version.number}.{fmt}")


@require_POST
@editor_required
def dataset_add_run(request):
    """A Sandbox run as a new row: its message as `input`, its reply as the expected output."""
    dataset_id = request.POST.get("dataset", "")
    dataset = get_object_or_404(Dataset, pk=dataset_id) if is_uuid(dataset_id) else None
    if dataset is None:
        raise Http404("No such dataset.")
    run_id = request.POST.get("run", "")
    run = _visible_runs(request.user).filter(pk=run_id).first() if is_uuid(run_id) else None
    if run is None:
        raise Http404("No such run.")
    latest = dataset.latest
    row = {"variables": {"input": run.user_prompt}, "expected": run.reply,
           "metadata": {"from_run": str(run.pk), "model": run.model_name}}  # fmt: skip
    version = datasets.save_version(dataset, [*(latest.rows if latest else []), row], request.user,
                                    f"added a run of {run.model_name}")  # fmt: skip
    audit.record(request, AuditAction.DATASET, dataset, detail=f"v{version.number}: a run added")
    messages.success(request, f"Added to {dataset.name} as version {version.number}.")
    return go(request, reverse("dataset-detail", args=[dataset.pk]))


@require_http_methods(["GET", "POST"])
@editor_required
def dataset_edit(request, pk):
    """Edit the rows as JSON Lines, one {"variables", "expected", "metadata"} a line: read
    and checked as an upload is, and saved as a new version (the old one stays)."""
    dataset = get_object_or_404(Dataset, pk=pk)
    latest = dataset.latest
    text = request.POST.get("rows", "")
    errors: list = []
    if request.method == "POST":
        new_rows, errors = datasets.edited(text)
        if not errors:
            message = (request.POST.get("message") or "edited on the page").strip()[:200]
            version = datasets.save_version(dataset, new_rows, request.user, message)
            audit.record(
                request, AuditAction.DATASET, dataset, detail=f"v{version.number}: {message}"
            )
            messages.success(request, f"Saved as version {version.number}: {len(new_rows)} rows.")
            return go(request, reverse("dataset-detail", args=[dataset.pk]))
    elif latest is not None:
        text = datasets.export(latest, "jsonl")[0].decode()
    ctx = {"dataset": dataset, "text": text, "errors": errors[:200], "latest": latest}
    return render(request, "sandbox/dataset_edit.html", ctx)
