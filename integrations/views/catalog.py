"""The models catalog (home page) and the quick actions on a model."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from integrations import writes
from integrations.models import CustomModel, Integration, TestStatus
from integrations.team.roles import can_edit, editor_required
from integrations.views.helpers import safe_next

PAGE_SIZE = 50


@require_GET
def catalog(request):
    models = CustomModel.objects.select_related("integration").order_by("integration__name", "name")
    q = request.GET.get("q", "").strip()
    if q:
        models = models.filter(
            Q(name__icontains=q) | Q(model_id__icontains=q) | Q(integration__name__icontains=q)
        )
    integration = request.GET.get("integration", "")
    if integration:
        models = models.filter(integration__name=integration)
    status = request.GET.get("status", "")
    if status == "disabled":
        models = models.filter(Q(enabled=False) | Q(integration__enabled=False))
    elif status in TestStatus.values:
        models = models.filter(last_test_status=status, enabled=True, integration__enabled=True)
    page = Paginator(models, PAGE_SIZE).get_page(request.GET.get("page"))
    ctx = {
        "page": page,
        "q": q,
        "status": status,
        "integration": integration,
        "integrations": Integration.objects.order_by("name").values_list("name", flat=True),
        "statuses": TestStatus.choices,
        "can_edit": can_edit(request.user),
    }
    if request.htmx and request.htmx.target == "catalog-results":
        return render(request, "integrations/catalog.html#results", ctx)
    return render(request, "integrations/catalog.html", ctx)


def _row(request, model: CustomModel, just_tested: bool = False):
    ctx = {"m": model, "can_edit": True, "just_tested": just_tested}
    return render(request, "integrations/catalog.html#row", ctx)


@require_POST
@editor_required
def model_test(request, pk):
    model = get_object_or_404(
        CustomModel.objects.select_related("integration__auth_profile__stored_secret"), pk=pk
    )
    result, _ = writes.test_model(model, request)
    if request.htmx:  # the row again, with the reason in place
        return _row(request, model, just_tested=True)
    if result.ok:
        messages.success(request, f"{model.name}: test passed in {result.latency_ms} ms.")
    else:
        messages.error(request, f"{model.name}: {result.error.message} {result.error.hint}")
    return redirect(safe_next(request, reverse("home")))


@require_POST
@editor_required
def model_toggle(request, pk):
    """Disable at once; enabling needs a passing test of the saved configuration, run now."""
    model = get_object_or_404(
        CustomModel.objects.select_related("integration__auth_profile__stored_secret"), pk=pk
    )
    if model.enabled:
        writes.set_enabled(model, False, request)
        messages.success(request, f"{model.name} disabled.")
    else:
        refused = writes.set_enabled(model, True, request)
        if refused is None:
            messages.success(request, f"{model.name} passed its test and is enabled.")
        else:
            messages.error(
                request,
                f"{model.name} stays disabled: enabling needs a passing test. "
                f"{refused.error.message} {refused.error.hint}",
            )
    if request.htmx:
        model.refresh_from_db()
        return _row(request, model)
    return redirect(safe_next(request, reverse("home")))
