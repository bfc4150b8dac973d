"""The one rule for names people give things: unique without regard to case or the
spaces around them, checked where a form shows it next to the field and again in the
write path, so no entry point meets the database's constraint as a 500."""

from __future__ import annotations

from integrations.models import AuthProfile, CustomModel, Integration, StoredSecret

WHAT = {
    Integration: "An integration",
    AuthProfile: "An auth profile",
    StoredSecret: "A secret",
    CustomModel: "A model of this integration",
}


def clean(name: str) -> str:
    return (name or "").strip()


def taken(model, name: str, *, exclude=None, integration=None) -> str | None:
    """Why `name` cannot be used for a `model` row (None if it can). A model's name is
    unique within its integration; `exclude` is the row being renamed."""
    found = model.objects.filter(name__iexact=clean(name))
    if model is CustomModel:
        if integration is None or integration.pk is None:
            return None
        found = found.filter(integration=integration)
    if exclude is not None and exclude.pk is not None:
        found = found.exclude(pk=exclude.pk)
    if found.exists():
        return f"{WHAT[model]} named {clean(name)!r} exists already."
    return None
