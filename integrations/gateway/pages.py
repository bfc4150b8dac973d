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
@editor_required(what="create, edit and revoke gateway keys")
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
@editor_required(what="create, edit and revoke gateway keys")
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
@editor_required(what="create, edit and revoke gateway keys")
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
    """Charts of requests, tokens, cost, refusals, error rate and latency per day, by model
    and by key, over a chosen range; Admins see everything, others their keys and runs.
    `show=refused`: only the refused calls, with their reasons."""
    start, end, chosen = _range(request)
    model, key = request.GET.get("model", ""), request.GET.get("key", "")
    key = key if is_uuid(key) else ""
    show = "refused" if request.GET.get("show") == "refused" else ""
    days_in = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    labels = [d.strftime("%b %d") for d in days_in]
    ctx = {
        "range": chosen,
        "ranges": RANGES,
        "model": model,
        "key": key,
        "show": show,
        "start": start,
        "end": end,
        "model_names": usage.scope(request.user)
        .values_list("model_name", flat=True)
        .order_by("model_name")
        .distinct(),
        "key_choices": keys.visible(request.user),
    }
    if show:
        found = usage.refusals(usage.refused_rows(request.user, start, end, model, key), start, end)
        ctx["refusals"] = found
        ctx["charts"] = [
            _chart("Refused per day", charts.bars("Refused", labels, found.per_day), days_in,
                   {"Refused": found.per_day}),
        ]  # fmt: skip
        return render(request, "gateway/usage.html", ctx)
    rows = usage.in_range(request.user, start, end, model, key)
    days = usage.daily(rows, start, end)
    totals = usage.by_model(rows)
    requests = [d.requests for d in days]
    tokens = [d.tokens for d in days]
    cost = [float(d.cost) for d in days]
    refused = [d.refused for d in days]
    errors = [round(d.error_rate * 100, 1) if d.requests else None for d in days]
    p50, p95 = [d.p50 for d in days], [d.p95 for d in days]
    ctx |= {
        "days": days,
        "models": totals,
        "keys": usage.by_key(rows),
        "total": usage.sum_of(totals),
        "charts": [
            _chart("Requests per day", charts.bars("Requests", labels, requests), days_in,
                   {"Requests": requests}),
            _chart("Tokens per day", charts.bars("Tokens", labels, tokens), days_in, {"Tokens": tokens}),
            _chart("Cost per day", charts.bars("Cost", labels, cost, "$"), days_in,
                   {"Cost (USD)": [f"${d.cost:.4f}" for d in days]}),
            _chart("Refused per day (keys, scope, limits)", charts.bars("Refused", labels, refused),
                   days_in, {"Refused": refused}),
            _chart("Error rate per day (%)", charts.lines("Error rate", labels, {"errors": errors}),
                   days_in, {"Error rate (%)": errors}),
            _chart("Latency per day: p50 (solid) and p95 (dashed), ms, about",
                   charts.lines("Latency", labels, {"p50": p50, "p95": p95}), days_in,
                   {"p50 (ms, about)": p50, "p95 (ms, about)": p95}),
        ],
    }  # fmt: skip
    return render(request, "gateway/usage.html", ctx)


def _chart(title: str, svg, days: list, series: dict) -> dict:
    """A chart with the table of its numbers (what a screen reader reads instead)."""
    columns = list(series)
    rows = [
        [day.isoformat(), *("—" if values[i] is None else values[i] for values in series.values())]
        for i, day in enumerate(days)
    ]
    return {"title": title, "svg": svg, "columns": columns, "rows": rows}


@require_GET
def usage_csv(request):
    start, end, chosen = _range(request)
    key = request.GET.get("key", "")
    rows = usage.in_range(
        request.user, start, end, request.GET.get("model", ""), key if is_uuid(key) else ""
    )
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    if request.GET.get("show") == "refused":
        rows = usage.refused_rows(
            request.user, start, end, request.GET.get("model", ""), key if is_uuid(key) else ""
        )
        lines = usage.refused_csv(rows)
        response["Content-Disposition"] = f'attachment; filename="refused-{start}-{end}.csv"'
    else:
        lines = usage.csv_rows(rows)
        response["Content-Disposition"] = f'attachment; filename="usage-{start}-{end}.csv"'
    writer = csv.writer(response)
    for line in lines:
        writer.writerow([_cell(v) for v in line])
    return response


def _cell(value):
    """A spreadsheet must not run a name as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
