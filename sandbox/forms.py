from __future__ import annotations

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
        choices = model_choices()
        self.fields["model"].choices = [("", "— choose a model —")] + choices
        self.fields["compare"].choices = choices

    def clean_stop(self) -> list[str]:
        lines = [line for line in self.cleaned_data["stop"].splitlines() if line.strip()]
        if len(lines) > 4:
            raise forms.ValidationError("At most 4 stop sequences.")
        return lines

    def clean(self):
        cleaned = super().clean()
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

    def models(self) -> list:
        by_id = {
            str(m.pk): m
            for m in services.usable_models().filter(pk__in=self.cleaned_data["models"])
        }
        return [by_id[pk] for pk in self.cleaned_data["models"] if pk in by_id]

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
