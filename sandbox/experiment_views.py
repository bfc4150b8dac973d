"""Experiments: the list, a new one (its cost estimated before it starts), its page (live
progress, aggregates per model, the results with filters), cancel, export, two compared
row by row, and the blind pairwise review. Every signed-in role runs experiments; the
owner or an Editor cancels one."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations import audit
from integrations.gateway import charts
from integrations.models import AuditAction
from integrations.team.roles import can_edit
from integrations.views.helpers import download, go
from sandbox import experiments, results
from sandbox.eval_forms import ExperimentForm, scorer_rows
from sandbox.forms import is_uuid
from sandbox.models import Experiment, Review

PAGE = "sandbox/experiment_detail.html"


def _experiment(pk) -> Experiment:
    return get_object_or_404(
        Experiment.objects.select_related("dataset_version__dataset", "owner"), pk=pk
    )


@require_GET
def experiment_list(request):
    found = Experiment.objects.select_related("dataset_version__dataset", "owner")[:200]
    return render(request, "sandbox/experiments.html", {"experiments": found})


@require_http_methods(["GET", "POST"])
def experiment_new(request):
    initial = {"dataset_version": request.GET.get("dataset_version")}
    form = ExperimentForm(request.POST or None, user=request.user, initial=initial)
    ctx = {"form": form}
    valid = request.method == "POST" and form.is_valid()
    ctx["scorer_rows"] = scorer_rows(form, request.POST)
    if valid:
        fields = form.experiment_fields()
        try:
            draft = Experiment(
                owner=request.user,
                **(fields | {"targets": experiments.check_targets(fields["targets"])}),
            )
        except experiments.ExperimentError as exc:
            form.add_error("targets", str(exc))
            return render(request, "sandbox/experiment_form.html", ctx)
        if request.POST.get("confirm") != "1":  # first the estimate, then Start
            ctx |= {"estimate": experiments.estimate(draft), "calls": draft.total}
            return render(request, "sandbox/experiment_form.html", ctx)
        experiment = experiments.create(request, **fields)
        return go(request, reverse("experiment-detail", args=[experiment.pk]))
    return render(request, "sandbox/experiment_form.html", ctx)


@require_GET
def experiment_detail(request, pk):
    experiment = _experiment(pk)
    progress = experiments.progress(experiment)
    ctx = {
        "experiment": experiment,
        "progress": progress,
        "can_cancel": _may_cancel(request, experiment),
    }
    if request.htmx and request.GET.get("part") == "progress":
        response = render(request, f"{PAGE}#progress", ctx)
        if progress["finished"]:  # the page's results and aggregates are the run's last
            response["HX-Refresh"] = "true"
        return response
    page = request.GET.get("page", "1")
    show = request.GET.get("show", "")
    aggregates = experiments.aggregates(experiment)
    rates = [a["pass_rate"] for a in aggregates]
    if rates and None not in rates:  # every model scored: their pass rates side by side
        names = [a["target"] for a in aggregates]
        ctx["pass_chart"] = charts.bars("Pass rate", names, [round(100 * r, 1) for r in rates])
    ctx |= {
        "aggregates": aggregates, "show": show,
        "table": results.table(experiment, show, int(page) if page.isdigit() else 1),
        "others": Experiment.objects.exclude(pk=experiment.pk).only("id", "name", "created_at")[:50],
        "win_rates": results.win_rates(experiment),
    }  # fmt: skip
    return render(request, PAGE, ctx)


def _may_cancel(request, experiment: Experiment) -> bool:
    return experiment.owner_id == request.user.pk or can_edit(request.user)


@require_POST
def experiment_cancel(request, pk):
    experiment = _experiment(pk)
    if not _may_cancel(request, experiment):
        raise PermissionDenied(
            "Only the person who started it, an Editor or an Admin can cancel it."
        )
    if experiments.cancel(request, experiment):
        messages.success(request, "Cancelled: no new call starts; calls in flight finish.")
    return go(request, reverse("experiment-detail", args=[experiment.pk]))


@require_GET
def experiment_export(request, pk):
    experiment = _experiment(pk)
    fmt = "json" if request.GET.get("format") == "json" else "csv"
    body, kind = results.export(experiment, fmt)
    return download(body, kind, f"experiment-{experiment.pk}.{fmt}")


@require_GET
def experiment_compare(request, pk):
    experiment = _experiment(pk)
    other_id = request.GET.get("with", "")
    other = Experiment.objects.filter(pk=other_id).first() if is_uuid(other_id) else None
    if other is None:
        messages.error(request, "Pick an experiment to compare with.")
        return go(request, reverse("experiment-detail", args=[experiment.pk]))
    ctx = {"before": other, "after": experiment, "compared": results.compare(other, experiment)}
    return render(request, "sandbox/experiment_compare.html", ctx)


@require_http_methods(["GET", "POST"])
def experiment_review(request, pk):
    experiment = _experiment(pk)
    if request.method == "POST":
        _record_review(request, experiment)
        return go(request, reverse("experiment-review", args=[experiment.pk]))
    ctx = {"experiment": experiment, "pair": results.next_pair(experiment, request.user),
           "win_rates": results.win_rates(experiment)}  # fmt: skip
    return render(request, "sandbox/experiment_review.html", ctx)


def _record_review(request, experiment: Experiment) -> None:
    try:
        row, left, right = (int(request.POST.get(k, "")) for k in ("row", "left", "right"))
    except ValueError:
        messages.error(request, "That pick was garbled; here is another pair.")
        return
    targets = len(experiment.targets)
    pick = request.POST.get("pick", "")
    if not (
        0 <= left < targets
        and 0 <= right < targets
        and left != right
        and pick in ("left", "right", "tie")
    ):
        messages.error(request, "That pick was garbled; here is another pair.")
        return
    winner = {"left": left, "right": right}.get(pick)
    Review.objects.get_or_create(experiment=experiment, row=row, left=left, right=right,
                                 reviewer=request.user, defaults={"winner": winner})  # fmt: skip
    audit.record(request, AuditAction.REVIEW, experiment, detail=f"row {row + 1}: {pick}")
