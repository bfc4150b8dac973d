"""The Alerts page (Admins): rules and their recipients, what is firing, and every
message sent."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from integrations.alerts import delivery
from integrations.alerts.forms import AlertRuleForm, delete_rule, save_rule
from integrations.models import AlertDelivery, AlertIncident, AlertRule
from integrations.team.roles import admin_required

HISTORY = 100


@require_http_methods(["GET", "POST"])
@admin_required
def alerts(request):
    form = AlertRuleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        rule = save_rule(form, request)
        messages.success(request, f"Alert rule {rule.name} saved: the next check applies it.")
        return redirect("alerts")
    ctx = {
        "form": form,
        "rules": AlertRule.objects.select_related("key", "model__integration"),
        "firing": AlertIncident.objects.filter(resolved_at__isnull=True).select_related("rule"),
        "sent": AlertDelivery.objects.select_related("incident__rule")[:HISTORY],
    }
    return render(request, "alerts/alerts.html", ctx)


@require_http_methods(["GET", "POST"])
@admin_required
def rule_edit(request, pk):
    rule = get_object_or_404(AlertRule, pk=pk)
    form = AlertRuleForm(request.POST or None, instance=rule)
    if request.method == "POST" and form.is_valid():
        save_rule(form, request)
        messages.success(request, f"Alert rule {rule.name} saved.")
        return redirect("alerts")
    return render(request, "alerts/rule_edit.html", {"form": form, "rule": rule})


@require_http_methods(["GET", "POST"])
@admin_required
def rule_delete(request, pk):
    """Delete after a confirmation, with the rule's incidents and messages."""
    rule = get_object_or_404(AlertRule, pk=pk)
    if request.method == "GET":
        return render(request, "alerts/rule_delete.html", {"rule": rule})
    delete_rule(rule, request)
    messages.success(request, f"Alert rule {rule.name} deleted, with its history.")
    return redirect("alerts")


@require_POST
@admin_required
def rule_try(request, pk):
    """Send a test message to the rule's recipients now (kept in the history)."""
    rule = get_object_or_404(AlertRule, pk=pk)
    incident = AlertIncident.objects.create(
        rule=rule,
        subject=f"test:{rule.pk}",
        title=f"Test message for {rule.name}",
        detail="Sent from the Alerts page to check the recipients.",
        resolved_at=timezone.now(),
    )  # fmt: skip (closed from the start: a test is never an open incident)
    sent = delivery.deliver(incident, "test")
    failed = [d for d in sent if not d.ok]
    if failed:
        messages.error(request, "; ".join(f"{d.channel} to {d.target}: {d.error}" for d in failed))
    else:
        messages.success(request, f"Test message sent to {', '.join(d.target for d in sent)}.")
    return redirect("alerts")
