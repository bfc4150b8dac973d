"""The one write path for routes: the console's form, the REST API and import all come
here. Test then Save: each target is called with the route's settings, and a route is
saved only when at least one of its targets passed. Each test is recorded by
writes.record_test like any other, and the route's page marks the targets that failed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from django.db import transaction
from django.utils import timezone

from integrations import audit, services
from integrations.llm import client
from integrations.llm.config import CallResult
from integrations.llm.errors import LLMError
from integrations.models import AuditAction, CustomModel, Route, RouteTarget
from integrations.writes import Refused, record_test

MAX_TARGETS = 20
ROUTE_FIELDS = (
    "name", "description", "strategy", "retry_same", "move_on", "attempts_per_target",
    "deadline_seconds", "first_token_seconds", "failures_to_cool", "failure_window_seconds",
    "cooldown_seconds", "resume_streams", "enabled",
)  # fmt: skip


@dataclass(frozen=True)
class TargetSpec:
    model: CustomModel
    role: str = "main"
    weight: int = 1


@dataclass
class Tested:
    target: TargetSpec
    result: CallResult


def name_clash(name: str, route: Route | None = None) -> str:
    """Why a route may not take this name (it would hide a model or another route)."""
    others = Route.objects.filter(name=name)
    if route is not None and route.pk is not None:
        others = others.exclude(pk=route.pk)
    if others.exists():
        return f"A route named {name!r} exists."
    integration, _, model_name = name.rpartition("/")
    models = CustomModel.objects.filter(gateway_alias=name) | CustomModel.objects.filter(name=name)
    if integration:
        models |= CustomModel.objects.filter(integration__name=integration, name=model_name)
    if models.exists():
        return f"A model is called {name!r} in the gateway: a route must have a name of its own."
    return ""


def target_problem(targets: list[TargetSpec]) -> str:
    """What is wrong with a route's list of targets, or ""."""
    if not any(t.role == "main" for t in targets):
        return "Add at least one target (a fallback alone serves nothing)."
    if len(targets) > MAX_TARGETS:
        return f"A route takes at most {MAX_TARGETS} targets."
    kinds = {t.model.kind for t in targets}
    if len(kinds) > 1:
        return "A route's targets are all chat models or all embeddings models, not both."
    seen = set()
    for t in targets:
        if (t.model.pk, t.role) in seen:
            return f"{t.model} is listed twice in the same role."
        seen.add((t.model.pk, t.role))
    return ""


def _test_call(route: Route, target: TargetSpec):
    """What testing a target calls with the route's settings, or the error that stops it.
    Read here, in the request's thread: the calls run in a pool without the database."""
    model = target.model
    try:
        config = services.config_for(model.integration, model)
    except LLMError as exc:
        refused = CallResult(ok=False, error=exc)
        return lambda: refused
    config = replace(config, timeout=min(config.timeout, float(route.deadline_seconds)))
    params = model.test_model_parameters or services.DEFAULT_TEST_PARAMETERS
    prompt = services.test_prompt(params, config.kind)
    return lambda: client.call(config, prompt)


def test_targets(route: Route, targets: list[TargetSpec], request=None) -> list[Tested]:
    """Call every target with the route's settings, at once, and record each test."""
    calls = [_test_call(route, t) for t in targets]
    with ThreadPoolExecutor(max_workers=min(8, len(targets) or 1)) as pool:
        results = list(pool.map(lambda call: call(), calls))
    tested = []
    for target, result in zip(targets, results, strict=True):
        model = target.model
        subject = f"Route {route.name} / {model.integration.name} / {model.name}"
        record_test(model.integration, None, None, result, request, subject=subject)
        tested.append(Tested(target, result))
    return tested


def save_route(route: Route, fields: dict, targets: list[TargetSpec], request) -> list[Tested]:
    """Test the targets and, when one passes, write the route and its targets.
    Raises Refused (nothing written) when none passes."""
    for name in ROUTE_FIELDS:
        if name in fields:
            setattr(route, name, fields[name])
    route.kind = targets[0].model.kind if targets else "chat"
    tested = test_targets(route, targets, request)
    if not any(t.result.ok for t in tested if t.target.role == "main"):
        first = next((t.result.error for t in tested if t.result.error is not None), None)
        failing = [(t.target.model, t.result) for t in tested]
        raise Refused(
            "Not saved: no target passed its test with this route's settings. "
            "Fix a target (or pick another) and try again.",
            first,
            failing,
        )
    creating = route.pk is None or not Route.objects.filter(pk=route.pk).exists()
    if creating and request is not None and getattr(request, "user", None) is not None:
        route.created_by = request.user if request.user.is_authenticated else None
    before = {} if creating else audit.snapshot(Route.objects.get(pk=route.pk))
    now = timezone.now()
    with transaction.atomic():
        route.save()
        route.targets.all().delete()
        RouteTarget.objects.bulk_create(
            RouteTarget(
                route=route, model=t.target.model, position=i, weight=t.target.weight,
                role=t.target.role, last_test_ok=t.result.ok, last_tested_at=now,
                last_test_error="" if t.result.ok else t.result.error.headline[:300],
            )
            for i, t in enumerate(tested)
        )  # fmt: skip
        if creating:
            audit.record_created(request, route)
        else:
            changes = audit.diff(before, audit.snapshot(route))
            audit.record(request, AuditAction.UPDATE, route, changes, detail="route")
    return tested


def delete_route(route: Route, request) -> None:
    with transaction.atomic():
        audit.record(request, AuditAction.DELETE, route, detail=f"route {route.name}")
        route.delete()


def targets_of(route: Route) -> list[TargetSpec]:
    return [
        TargetSpec(t.model, t.role, t.weight)
        for t in route.targets.select_related("model__integration")
    ]
