"""Routes in export and import: each target named by its integration and model, since ids
differ between consoles. Import goes through RouteForm (the one validator) and
routes.save_route (the one write path): targets are tested and a route whose targets all
fail is not imported, and says so."""

from __future__ import annotations

from integrations import routes
from integrations.forms.route import RouteForm
from integrations.models import CustomModel, Route
from integrations.writes import Refused


def export_routes() -> list[dict]:
    out = []
    for route in Route.objects.prefetch_related("targets__model__integration").order_by("name"):
        entry = {name: getattr(route, name) for name in routes.ROUTE_FIELDS}
        entry["targets"] = [
            {
                "integration": t.model.integration.name,
                "model": t.model.name,
                "role": t.role,
                "weight": t.weight,
            }
            for t in route.targets.all()
        ]
        out.append(entry)
    return out


def import_routes(entries: list, actor, report) -> None:
    """After the integrations: create or update each route by name."""
    models = {
        (m.integration.name, m.name): m for m in CustomModel.objects.select_related("integration")
    }
    for entry in entries:
        name = str(entry.get("name", ""))[:100]
        label = f"route {name}"
        targets, missing = [], []
        for t in entry.get("targets") or []:
            model = models.get((t.get("integration"), t.get("model")))
            if model is None:
                missing.append(f"{t.get('integration')} / {t.get('model')}")
                continue
            targets.append({"model": str(model.pk), "role": t.get("role", "main"),
                            "weight": t.get("weight", 1)})  # fmt: skip
        route = Route.objects.filter(name=name).first()
        if route is not None and _same(route, entry, targets):
            report.skipped.append(label)
            continue
        data = {f: entry.get(f) for f in routes.ROUTE_FIELDS if f in entry}
        if data.get("first_token_seconds") is None:
            data["first_token_seconds"] = ""
        form = RouteForm(data, instance=route or Route(), targets=targets)
        if not form.is_valid():
            why = "; ".join(str(m) for messages in form.errors.values() for m in messages)
            report.skipped.append(f"{label} (not imported: {why})")
            continue
        try:
            routes.save_route(form.instance, form.cleaned_data, form.cleaned_targets, actor)
        except Refused as exc:
            report.skipped.append(f"{label} (not imported: {exc.message})")
            continue
        (report.created if route is None else report.updated).append(label)
        if missing:
            report.disabled.append(f"{label}: targets not found: {', '.join(missing)}")


def _same(route: Route, entry: dict, targets: list[dict]) -> bool:
    fields = all(getattr(route, f) == entry.get(f) for f in routes.ROUTE_FIELDS if f in entry)
    saved = [
        {"model": str(t.model_id), "role": t.role, "weight": t.weight} for t in route.targets.all()
    ]
    return fields and saved == targets
