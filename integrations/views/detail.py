"""Integration detail, a test record, delete confirmations."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from integrations import services, writes
from integrations.llm.redact import curl_from_redacted, pretty
from integrations.models import ConnectionTest, CustomModel, Integration
from integrations.secrets import mask
from integrations.team.roles import can_edit, editor_required
from integrations.views.helpers import go

HISTORY_SIZE = 20


@require_GET
def integration_detail(request, pk):
    integration = get_object_or_404(
        Integration.objects.select_related("auth_profile__stored_secret"), pk=pk
    )
    headers = [
        {"name": h.name, "value": mask(h.value) if h.secret else str(h.value), "secret": h.secret}
        for h in integration.headers.all()
    ]
    tests = (
        ConnectionTest.objects.filter(integration=integration)
        .select_related("user", "model")
        .order_by("-created_at")
    )
    profile = integration.auth_profile
    ctx = {
        "integration": integration,
        "resolved_url": services.request_url(integration),
        "headers": headers,
        "auth_secret": profile.masked_secret if profile else "",
        "models": integration.models.order_by("name"),
        "history": Paginator(tests, HISTORY_SIZE).get_page(request.GET.get("page")),
        "can_edit": can_edit(request.user),
        "lists_models": services.lists_models(integration),
    }
    return render(request, "integrations/integration_detail.html", ctx)


@require_GET
def connection_test_detail(request, pk):
    test = get_object_or_404(
        ConnectionTest.objects.select_related("integration", "model", "user"), pk=pk
    )
    ctx = {
        "test": test,
        "request_body": pretty(test.request.get("body")),
        "curl": curl_from_redacted(test.request) if test.request else "",
    }
    return render(request, "integrations/connection_test.html", ctx)


@require_http_methods(["GET", "POST"])
@editor_required
def integration_delete(request, pk):
    integration = get_object_or_404(Integration, pk=pk)
    if request.method == "POST":
        name = integration.name
        writes.delete_integration(integration, request)
        messages.success(request, f"Integration {name} and its models were deleted.")
        return go(request, reverse("home"))
    ctx = {
        "integration": integration,
        "models": integration.models.annotate(test_count=Count("tests")).order_by("name"),
        "test_count": integration.tests.count(),
    }
    return render(request, "integrations/integration_delete.html", ctx)


@require_http_methods(["GET", "POST"])
@editor_required
def model_delete(request, pk):
    model = get_object_or_404(CustomModel.objects.select_related("integration"), pk=pk)
    # Started from the catalog: go back there (a fixed choice, never a URL from the request).
    from_catalog = (request.POST if request.method == "POST" else request.GET).get(
        "from"
    ) == "catalog"
    if request.method == "POST":
        name, integration = model.name, model.integration
        writes.delete_model(model, request)
        messages.success(request, f"Model {name} was deleted.")
        back = (
            reverse("home")
            if from_catalog
            else reverse("integration-detail", args=[integration.pk])
        )
        return go(request, back)
    ctx = {"model": model, "test_count": model.tests.count(), "from_catalog": from_catalog}
    return render(request, "integrations/model_delete.html", ctx)
