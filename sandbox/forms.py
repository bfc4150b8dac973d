from __future__ import annotations

import uuid

from django import forms
from django.conf import settings

from integrations.llm.config import Prompt
from sandbox import services


def model_choices() -> list:
    """Enabled models grouped by integration, for a <select> with optgroups."""
    groups: dict[str, list] = {}
    for pk, name, integration in services.usable_models().values_list(
        "id", "name", "integration__name"
    ):
        groups.setdefault(integration, []).append((str(pk), name))
    return list(groups.items())


class SandboxForm(forms.Form):
    model = forms.ChoiceField(label="Model")
    system_prompt = forms.CharField(
        label="System prompt", required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    user_prompt = forms.CharField(label="User prompt", widget=forms.Textarea(attrs={"rows": 6}))
    temperature = forms.FloatField(label="Temperature", required=False, min_value=0, max_value=2)
    max_tokens = forms.IntegerField(
        label="Max tokens", required=False, min_value=1, max_value=200_000
    )
    top_p = forms.FloatField(label="Top p", required=False, min_value=0, max_value=1)
    stop = forms.CharField(
        label="Stop sequences", required=False, max_length=500, help_text="One per line, up to 4."
    )
    stream = forms.BooleanField(label="Stream the reply", required=False, initial=True)
    compare = forms.MultipleChoiceField(
        label="Compare with", required=False, widget=forms.SelectMultiple(attrs={"size": 5})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.is_bound:
            # A run validates the few ids it names (models() loads them); building the
            # picker's whole list of models on every run would cost a query per run.
            self.fields["model"] = forms.UUIDField(label="Model")
            self.fields["compare"] = forms.TypedMultipleChoiceField(
                label="Compare with",
                required=False,
                coerce=str,
                widget=self.fields["compare"].widget,
            )
            self.fields["compare"].valid_value = is_uuid
        else:
            self.load_choices()

    def load_choices(self) -> None:
        """Fill the model pickers (for rendering the form)."""
        choices = model_choices()
        self.fields["model"] = forms.ChoiceField(
            label="Model", choices=[("", "— choose a model —")] + choices
        )
        compare = forms.MultipleChoiceField(
            label="Compare with",
            required=False,
            choices=choices,
            widget=forms.SelectMultiple(attrs={"size": 5}),
        )
        self.fields["compare"] = compare
        if self.is_bound:
            self._bound_fields_cache.pop("model", None)
            self._bound_fields_cache.pop("compare", None)

    def clean_stop(self) -> list[str]:
        lines = [line for line in self.cleaned_data["stop"].splitlines() if line.strip()]
        if len(lines) > 4:
            raise forms.ValidationError("At most 4 stop sequences.")
        return lines

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("model") is not None:
            cleaned["model"] = str(cleaned["model"])
        picked = [cleaned.get("model")] + [
            m for m in cleaned.get("compare", []) if m != cleaned.get("model")
        ]
        picked = [p for p in picked if p]
        if len(picked) > settings.SANDBOX_COMPARE_MAX:
            self.add_error(
                "compare", f"Compare at most {settings.SANDBOX_COMPARE_MAX} models at once."
            )
        cleaned["models"] = picked
        return cleaned

    def targets(self) -> list[services.Target]:
        """The chosen enabled models, ready to call, in the order picked."""
        found = (services.target(pk) for pk in self.cleaned_data["models"])
        return [t for t in found if t is not None]

    def prompt(self) -> Prompt:
        data = self.cleaned_data
        params = {
            "temperature": data.get("temperature"),
            "max_tokens": data.get("max_tokens"),
            "top_p": data.get("top_p"),
            "stop": data.get("stop") or None,
        }
        return Prompt(
            system=data.get("system_prompt", ""),
            user=data["user_prompt"],
            params={k: v for k, v in params.items() if v is not None},
        )


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
