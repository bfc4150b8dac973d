"""Routes: the list, the form (Test then Save), a route's page with each target's state
live, and delete. Everyone signed in reads them; Editors and Admins change them."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from integrations import routes
from integrations.forms.route import RouteForm
from integrations.gateway import routing
from integrations.models import Route
from integrations.team.roles import can_edit, editor_required
from integrations.views.helpers import go
from integrations.writes import Refused


@require_GET
def route_list(request):
    found = Route.objects.prefetch_related("targets__model__integration")
    return render(
        request, "integrations/routes.html", {"routes": found, "can_edit": can_edit(request.user)}
    )


@require_http_methods(["GET", "POST"])
@editor_required
def route_edit(request, pk=None):
    route = get_object_or_404(Route, pk=pk) if pk else Route()
    form = RouteForm(request.POST or None, instance=route)
    ctx = {"form": form, "route": route, "failing": []}
    if request.method == "POST" and form.is_valid():
        try:
            tested = routes.save_route(
                form.instance, form.cleaned_data, form.cleaned_targets, request
            )
        except Refused as exc:
            form.add_error(None, exc.message)
            ctx["failing"] = [(m, r.error) for m, r in exc.failing if not r.ok]
        else:
            bad = [t for t in tested if not t.result.ok]
            note = f" {len(bad)} target(s) failed their test and are marked." if bad else ""
            messages.success(request, f"Route {form.instance.name} saved.{note}")
            return go(request, reverse("route-detail", args=[form.instance.pk]))
    return render(request, "integrations/route_form.html", ctx)


@require_GET
def route_detail(request, pk):
    route = get_object_or_404(Route, pk=pk)
    ctx = {"route": route, "states": routing.states(route), "can_edit": can_edit(request.user)}
    ctx["now"] = timezone.now().timestamp()
    template = "integrations/route_detail.html"
    return render(request, f"{template}#target-states" if request.htmx else template, ctx)


@require_http_methods(["GET", "POST"])
@editor_required
def route_delete(request, pk):
    route = get_object_or_404(Route, pk=pk)
    if request.method == "POST":
        routes.delete_route(route, request)
        messages.success(request, f"Route {route.name} was deleted.")
        return go(request, reverse("routes"))
    return render(request, "integrations/route_delete.html", {"route": route})
