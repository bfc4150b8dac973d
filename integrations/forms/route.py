"""The route form: one validator for the console's page, the REST API and import;
integrations/routes.save_route writes what it cleaned."""

from __future__ import annotations

import uuid

from django import forms

from integrations import routes
from integrations.models import CustomModel, Route, RouteStrategy, TargetRole
from integrations.models.routes import DEFAULT_MOVE_ON, DEFAULT_RETRY_SAME, ROUTABLE_KINDS

KIND_CHOICES = [(k, k.replace("_", " ")) for k in ROUTABLE_KINDS]
ROLES = [("", "Not used"), *TargetRole.choices]


class RouteForm(forms.ModelForm):
    """A route's settings and targets. On the page, each enabled model has a row (role,
    order, weight); the API passes `targets` as a list of {model, role, weight}."""

    retry_same = forms.MultipleChoiceField(
        label="Retry the same target on", choices=KIND_CHOICES, required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Up to the attempts per target, unless the upstream says when to come back.",
    )  # fmt: skip
    move_on = forms.MultipleChoiceField(
        label="Move to the next target on", choices=KIND_CHOICES, required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="A caller's bad request (400, 422) is never retried: it is answered at once.",
    )  # fmt: skip

    class Meta:
        model = Route
        fields = [
            "name", "description", "strategy", "retry_same", "move_on", "attempts_per_target",
            "deadline_seconds", "first_token_seconds", "failures_to_cool",
            "failure_window_seconds", "cooldown_seconds", "resume_streams", "enabled",
        ]  # fmt: skip
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}
        help_texts = {
            "first_token_seconds": "A stream whose first token is later fails over. Blank: none.",
            "resume_streams": "When a stream breaks after its first token, continue it on the "
            "next target so the caller sees one answer (calls are then translated, "
            "never forwarded).",
            "failures_to_cool": "Failures within the window that cool a target down; a 429 "
            "or 503 with Retry-After cools it at once, for as long as it says.",
        }

    def __init__(self, data=None, *args, targets=None, **kwargs):
        super().__init__(data, *args, **kwargs)
        self.api_targets = targets  # the API's list, or None: read the page's rows
        self.fields["strategy"].choices = RouteStrategy.choices
        if not self.is_bound and self.instance.pk is None:
            self.initial.setdefault("retry_same", DEFAULT_RETRY_SAME)
            self.initial.setdefault("move_on", DEFAULT_MOVE_ON)
        self.models = list(
            CustomModel.objects.filter(enabled=True, integration__enabled=True).select_related(
                "integration"
            )
        )
        self.current = {}
        if self.instance.pk is not None:
            self.current = {t.model_id: t for t in self.instance.targets.all()}
        self.cleaned_targets: list[routes.TargetSpec] = []

    def rows(self) -> list[dict]:
        """One row per model for the page: its role, order and weight, as posted or saved."""
        out = []
        for i, m in enumerate(self.models):
            saved = self.current.get(m.pk)
            if self.is_bound:
                role = self.data.get(f"role-{m.pk}", "")
                order = self.data.get(f"order-{m.pk}", "")
                weight = self.data.get(f"weight-{m.pk}", "1")
            else:
                role = saved.role if saved else ""
                order = (saved.position + 1) if saved else ""
                weight = saved.weight if saved else 1
            out.append({"model": m, "role": role, "order": order, "weight": weight,
                        "saved": saved, "index": i})  # fmt: skip
        return out

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if problem := routes.name_clash(name, self.instance):
            raise forms.ValidationError(problem)
        return name

    def clean(self):
        cleaned = super().clean()
        try:
            specs = self._api_targets() if self.api_targets is not None else self._page_targets()
        except forms.ValidationError as exc:
            self.add_error(None, exc)
            return cleaned
        if problem := routes.target_problem(specs):
            self.add_error(None, problem)
        self.cleaned_targets = specs
        return cleaned

    def _page_targets(self) -> list[routes.TargetSpec]:
        chosen = []
        for row in self.rows():
            role = row["role"]
            if not role:
                continue
            if role not in TargetRole.values:
                raise forms.ValidationError(f"{row['model']}: choose a role from the list.")
            order = _number(row["order"], f"{row['model']}: order", 1, 1000, default=1000)
            weight = _number(row["weight"], f"{row['model']}: weight", 1, 1000, default=1)
            chosen.append((order, row["index"], routes.TargetSpec(row["model"], role, weight)))
        return [spec for _, _, spec in sorted(chosen, key=lambda c: (c[0], c[1]))]

    def _api_targets(self) -> list[routes.TargetSpec]:
        by_id = {str(m.pk): m for m in self.models}
        specs = []
        for i, entry in enumerate(self.api_targets):
            model_id, role, weight = (
                entry.get("model"),
                entry.get("role", "main"),
                entry.get("weight", 1),
            )
            try:
                model = by_id.get(str(uuid.UUID(str(model_id))))
            except ValueError:
                model = None
            if model is None:
                raise forms.ValidationError(
                    f"targets[{i}]: no enabled model with id {str(model_id)[:40]!r}."
                )
            if role not in TargetRole.values:
                raise forms.ValidationError(
                    f"targets[{i}]: role is one of {', '.join(TargetRole.values)}."
                )
            specs.append(
                routes.TargetSpec(model, role, _number(weight, f"targets[{i}].weight", 1, 1000))
            )
        return specs


def _number(value, label: str, low: int, high: int, default: int | None = None) -> int:
    if value in ("", None) and default is not None:
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise forms.ValidationError(f"{label} is a whole number.") from None
    if not low <= number <= high:
        raise forms.ValidationError(f"{label} is between {low} and {high}.")
    return number
