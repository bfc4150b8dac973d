"""/api/v2/routes: routes, read by everyone, changed by Editors and Admins through the
same form and write path as the console (Test then Save: 409 when no target passes)."""

from __future__ import annotations

import uuid
from typing import Literal

from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema
from ninja.errors import ValidationError

from integrations import routes
from integrations.api.common import _refused, require_editor
from integrations.forms.route import RouteForm
from integrations.gateway import routing
from integrations.models import Route
from integrations.models.routes import DEFAULT_MOVE_ON, DEFAULT_RETRY_SAME, ROUTABLE_KINDS
from integrations.schemas import Input
from integrations.writes import Refused

router = Router(tags=["routes"])

Kind = Literal[ROUTABLE_KINDS]  # type: ignore[valid-type]


class TargetIn(Input):
    model: str = Field(description="A model id.", max_length=64)
    role: Literal["main", "context", "content"] = "main"
    weight: int = Field(1, ge=1, le=1000)


class RouteIn(Input):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=2000)
    strategy: Literal["priority", "weighted", "least_busy", "latency"] = "priority"
    targets: list[TargetIn] = Field(min_length=1, max_length=routes.MAX_TARGETS)
    retry_same: list[Kind] | None = None
    move_on: list[Kind] | None = None
    attempts_per_target: int = Field(1, ge=1, le=5)
    deadline_seconds: int = Field(120, ge=1, le=3600)
    first_token_seconds: float | None = Field(None, ge=0.05, le=600)
    failures_to_cool: int = Field(3, ge=1, le=1000)
    failure_window_seconds: int = Field(60, ge=1, le=86400)
    cooldown_seconds: int = Field(30, ge=1, le=86400)
    resume_streams: bool = False
    enabled: bool = True


class TargetOut(Schema):
    model: str
    name: str
    role: str
    weight: int
    state: str  # healthy | failing | cooling | probing
    cooling_until: float | None
    last_error: str
    last_test_ok: bool | None
    last_test_error: str


class RouteOut(Schema):
    id: str
    name: str
    description: str
    kind: str
    strategy: str
    targets: list[TargetOut]
    retry_same: list[str]
    move_on: list[str]
    attempts_per_target: int
    deadline_seconds: int
    first_token_seconds: float | None
    failures_to_cool: int
    failure_window_seconds: int
    cooldown_seconds: int
    resume_streams: bool
    enabled: bool


def _out(route: Route) -> dict:
    targets = [
        {
            "model": str(s.target.model_id),
            "name": f"{s.target.model.integration.name}/{s.target.model.name}",
            "role": s.target.role,
            "weight": s.target.weight,
            "state": s.state,
            "cooling_until": s.until if s.state == "cooling" else None,
            "last_error": s.error,
            "last_test_ok": s.target.last_test_ok,
            "last_test_error": s.target.last_test_error,
        }
        for s in routing.states(route)
    ]
    fields = {name: getattr(route, name) for name in routes.ROUTE_FIELDS}
    return fields | {"id": str(route.pk), "kind": route.kind, "targets": targets}


def _save(request, route: Route, payload: RouteIn) -> Route:
    """Through the console's form (the one validator) and the one write path."""
    data = payload.dict(exclude={"targets"})
    kept = (route.retry_same, route.move_on) if route.pk else (DEFAULT_RETRY_SAME, DEFAULT_MOVE_ON)
    data["retry_same"] = kept[0] if payload.retry_same is None else payload.retry_same
    data["move_on"] = kept[1] if payload.move_on is None else payload.move_on
    if data["first_token_seconds"] is None:
        data["first_token_seconds"] = ""
    form = RouteForm(data, instance=route, targets=[t.dict() for t in payload.targets])
    if not form.is_valid():
        errors = [
            {"loc": ("body", "payload", name if name != "__all__" else "targets"), "msg": str(m)}
            for name, messages in form.errors.items()
            for m in messages
        ]
        raise ValidationError(errors)
    try:
        routes.save_route(form.instance, form.cleaned_data, form.cleaned_targets, request)
    except Refused as exc:
        raise _refused(exc) from exc
    return form.instance


@router.get("routes", response=list[RouteOut], summary="List routes")
def list_routes(request):
    return [_out(r) for r in Route.objects.prefetch_related("targets")]


@router.post(
    "routes", response={201: RouteOut}, summary="Create a route (its targets tested first)"
)
def create_route(request, payload: RouteIn):
    require_editor(request)
    return 201, _out(_save(request, Route(), payload))


@router.get("routes/{route_id}", response=RouteOut, summary="A route, with its targets' state now")
def get_route(request, route_id: uuid.UUID):
    return _out(get_object_or_404(Route, pk=route_id))


@router.put(
    "routes/{route_id}", response=RouteOut, summary="Replace a route (its targets tested first)"
)
def update_route(request, route_id: uuid.UUID, payload: RouteIn):
    require_editor(request)
    return _out(_save(request, get_object_or_404(Route, pk=route_id), payload))


@router.delete("routes/{route_id}", response={204: None}, summary="Delete a route")
def delete_route(request, route_id: uuid.UUID):
    require_editor(request)
    routes.delete_route(get_object_or_404(Route, pk=route_id), request)
    return 204, None
