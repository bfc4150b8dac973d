"""Header rows: a name, a value, a secret flag; secret values kept when left blank."""

from __future__ import annotations

from django import forms

from integrations.forms.common import field_rule
from integrations.held import HeldValueInput, HoldsSecrets
from integrations.llm import inputs
from integrations.models import (
    Integration,
)
from integrations.secrets import mask


class HeaderRowForm(HoldsSecrets, forms.Form):
    id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    name = forms.CharField(max_length=200, required=False, label="Header name")
    value = forms.CharField(required=False, strip=False, label="Value", widget=HeldValueInput)
    secret = forms.BooleanField(required=False, label="Secret")

    def __init__(self, *args, user=None, scope: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.bind_held_secrets(user, scope)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        return field_rule(inputs.check_header_name, name) if name else name

    def clean_value(self) -> str:
        return field_rule(inputs.check_header_value, self.cleaned_data["value"])


class BaseHeaderFormSet(forms.BaseFormSet):
    def clean(self):
        names = set()
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or form.cleaned_data.get("DELETE"):
                continue
            name = form.cleaned_data.get("name", "").lower()
            if name and name in names:
                form.add_error("name", "This header is listed twice.")
            names.add(name)


HeaderFormSet = forms.formset_factory(
    HeaderRowForm,
    formset=BaseHeaderFormSet,
    extra=0,
    can_delete=True,
    max_num=30,
    validate_max=True,
)


def header_initial(integration: Integration | None) -> list[dict]:
    if integration is None:
        return []
    return [
        {
            "id": h.pk,
            "name": h.name,
            "value": "" if h.secret else str(h.value),
            "secret": h.secret,
            "stored": mask(h.value) if h.secret else "",
        }
        for h in integration.headers.all()
    ]
