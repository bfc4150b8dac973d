"""The gateway's pages: keys (Admins and Editors) and usage (Admins: all; owners: theirs)."""

from __future__ import annotations

import csv
from datetime import timedelta

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from integrations.gateway import charts, keys, usage
from integrations.gateway.forms import GatewayKeyForm
from integrations.llm.inputs import is_uuid
from integrations.team.roles import editor_required


@require_http_methods(["GET", "POST"])
@editor_required
def key_list(request):
    form = GatewayKeyForm(request.POST or None, user=request.user)
    ctx: dict = {"form": form}
    if request.method == "POST" and form.is_valid():
        key, raw = form.create(request)
        ctx.update(new_key=raw, new_key_row=key, form=GatewayKeyForm(user=request.user))
    found = list(keys.visible(request.user))
    spent = keys.spent_this_month(found)
    for key in found:
        key.spent = spent.get(key.pk) or 0
        key.remaining = (
            None if key.monthly_budget is None else max(key.monthly_budget - key.spent, 0)
        )
    ctx["keys"] = found
    ctx["now"] = timezone.now()
    ctx["base_url"] = request.build_absolute_uri("/v1")
    response = render(request, "gateway/keys.html", ctx)
    response["Cache-Control"] = "no-store"  # the new key is on this page once
    return response


@require_http_methods(["GET", "POST"])
@editor_required
def key_edit(request, pk):
    key = get_object_or_404(keys.visible(request.user), pk=pk)
    form = GatewayKeyForm(request.POST or None, user=request.user, key=key)
    if request.method == "POST" and form.is_valid():
        form.update(request)
        messages.success(
            request, f"Gateway key {key.name} saved: its next call follows the new settings."
        )
        return redirect("gateway-keys")
    return render(request, "gateway/key_edit.html", {"form": form, "key": key})


@require_http_methods(["GET", "POST"])
@editor_required
def key_revoke(request, pk):
    """Revoke after a confirmation: apps that use the key stop at once."""
    key = get_object_or_404(keys.visible(request.user), pk=pk)
    if request.method == "GET":
        return render(request, "gateway/key_revoke.html", {"key": key})
    if keys.revoke(key, request):
        messages.success(request, f"Gateway key {key.name} revoked: its next call is refused.")
    return redirect("gateway-keys")


RANGES = {"7": 7, "30": 30, "90": 90}


def _range(request):
    today = timezone.localdate()
    days = RANGES.get(request.GET.get("range", "30"), 30)
    return today - timedelta(days=days - 1), today, str(days)


@require_GET
def usage_page(request):
    """Charts of requests, tokens, cost, error rate and latency per day, by model and by
    key, over a chosen range; Admins see everything, others their keys and runs."""
    start, end, chosen = _range(request)
    model, key = request.GET.get("model", ""), request.GET.get("key", "")
    key = key if is_uuid(key) else ""
    rows = usage.in_range(request.user, start, end, model, key)
    days = usage.daily(rows, start, end)
    labels = [d.label.strftime("%b %d") for d in days]
    totals = usage.by_model(rows)
    ctx = {
        "days": days,
        "models": totals,
        "keys": usage.by_key(rows),
        "range": chosen,
        "ranges": RANGES,
        "model": model,
        "key": key,
        "start": start,
        "end": end,
        "model_names": usage.scope(request.user)
        .values_list("model_name", flat=True)
        .order_by("model_name")
        .distinct(),
        "key_choices": keys.visible(request.user),
        "total": usage.sum_of(totals),
        "charts": [
            ("Requests per day", charts.bars("Requests", labels, [d.requests for d in days])),
            ("Tokens per day", charts.bars("Tokens", labels, [d.tokens for d in days])),
            ("Cost per day", charts.bars("Cost", labels, [float(d.cost) for d in days], "$")),
            (
                "Refused per day (keys, scope, limits)",
                charts.bars("Refused", labels, [d.refused for d in days]),
            ),
            (
                "Error rate per day (%)",
                charts.lines(
                    "Error rate",
                    labels,
                    {
                        "errors": [
                            round(d.error_rate * 100, 1) if d.requests else None for d in days
                        ]
                    },
                ),
            ),
            (
                "Latency per day: p50 (solid) and p95 (dashed), ms, about",
                charts.lines(
                    "Latency", labels, {"p50": [d.p50 for d in days], "p95": [d.p95 for d in days]}
                ),
            ),
        ],
    }
    return render(request, "gateway/usage.html", ctx)


@require_GET
def usage_csv(request):
    start, end, chosen = _range(request)
    key = request.GET.get("key", "")
    rows = usage.in_range(
        request.user, start, end, request.GET.get("model", ""), key if is_uuid(key) else ""
    )
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="usage-{start}-{end}.csv"'
    writer = csv.writer(response)
    for line in usage.csv_rows(rows):
        writer.writerow([_cell(v) for v in line])
    return response


def _cell(value):
    """A spreadsheet must not run a name as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
