from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import render
from django.views.decorators.http import require_GET

from integrations.models import CustomModel, TestStatus


@require_GET
def catalog(request):
    models = CustomModel.objects.select_related("integration").order_by("integration__name", "name")
    q = request.GET.get("q", "").strip()
    if q:
        models = models.filter(
            Q(name__icontains=q) | Q(model_id__icontains=q) | Q(integration__name__icontains=q)
        )
    status = request.GET.get("status", "")
    if status == "disabled":
        models = models.filter(Q(enabled=False) | Q(integration__enabled=False))
    elif status in TestStatus.values:
        models = models.filter(last_test_status=status, enabled=True, integration__enabled=True)
    page = Paginator(models, 50).get_page(request.GET.get("page"))
    ctx = {"page": page, "q": q, "status": status, "statuses": TestStatus.choices}
    return render(request, "integrations/catalog.html", ctx)
