"""Forms of the evaluation pages: a dataset's upload, and a new experiment (its prompt, its
models or routes, its scorers, its limits). They validate; sandbox/experiments.py writes."""

from __future__ import annotations

from django import forms

from integrations.gateway import routed
from sandbox import scorers, services
from sandbox.forms import ROUTE, is_pick
from sandbox.models import DatasetVersion, PromptVersion
from sandbox.models.evaluation import MAX_MODELS


class UploadForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    file = forms.FileField(
        help_text="CSV with a header row, or JSON Lines (one object per line). Up to 5 MB and 10,000 rows."
    )

    def clean_name(self):
        from sandbox.models import Dataset

        name = self.cleaned_data["name"].strip()
        if Dataset.objects.filter(name=name).exists():
            raise forms.ValidationError("A dataset by that name exists: pick another name.")
        return name


def target_choices() -> list:
    models = services.usable_models().filter(kind="chat")
    rows = models.values_list("id", "name", "integration__name")
    routes = routed.usable_routes().filter(kind="chat").values_list("id", "name")
    return [("Models", [(str(pk), f"{integration} / {name}") for pk, name, integration in rows]),
            ("Routes", [(f"{ROUTE}{pk}", f"{name} (route)") for pk, name in routes])]  # fmt: skip


SCORER_FIELDS = {  # a scorer's settings fields, named <kind>-<setting>
    "contains": ["value"], "regex": ["pattern"], "json_schema": ["schema"],
    "numeric": ["tolerance"], "length": ["min", "max"], "latency": ["max_ms"], "cost": ["max"],
    "judge": ["model", "rubric", "scale", "threshold"],
}  # fmt: skip


class ExperimentForm(forms.Form):
    name = forms.CharField(max_length=100)
    dataset_version = forms.ModelChoiceField(
        queryset=DatasetVersion.objects.select_related("dataset"), label="Dataset version"
    )
    prompt_version = forms.ModelChoiceField(
        queryset=PromptVersion.objects.none(), required=False, label="Saved prompt version",
        help_text="Or leave this blank and write the prompt below.",
    )  # fmt: skip
    system_prompt = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    user_prompt = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Use the dataset's variables as {{name}}.",
    )  # fmt: skip
    targets = forms.MultipleChoiceField(
        label="Models and routes", widget=forms.SelectMultiple(attrs={"size": 6}),
        help_text=f"1 to {MAX_MODELS}.",
    )  # fmt: skip
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=200_000)
    temperature = forms.FloatField(required=False, min_value=0, max_value=2)
    concurrency = forms.IntegerField(
        initial=4, min_value=1, max_value=32, help_text="Calls at once, per model."
    )
    budget = forms.DecimalField(
        required=False, min_value=0, max_digits=12, decimal_places=6, label="Budget (USD)",
        help_text="The run stops before a call would take it over.",
    )  # fmt: skip

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        from sandbox import prompts

        visible = prompts.visible(user).values("pk") if user is not None else []
        self.fields["prompt_version"].queryset = PromptVersion.objects.filter(
            prompt__in=visible
        ).select_related("prompt")
        self.fields["prompt_version"].label_from_instance = lambda v: f"{v.prompt.name} v{v.number}"
        self.fields["dataset_version"].label_from_instance = lambda v: (
            f"{v.dataset.name} v{v.number} ({len(v.rows)} rows)"
        )
        self.fields["targets"].choices = target_choices()
        self.judges = [
            (str(pk), name)
            for pk, name in services.usable_models().filter(kind="chat").values_list("id", "name")
        ]
        self.scorer_errors: dict[str, str] = {}

    def clean_targets(self):
        picked = self.cleaned_data["targets"]
        if not 1 <= len(picked) <= MAX_MODELS:
            raise forms.ValidationError(f"Pick 1 to {MAX_MODELS} models or routes.")
        out = []
        for value in picked:
            if not is_pick(value):
                raise forms.ValidationError("Pick models and routes from the list.")
            key = "route" if value.startswith(ROUTE) else "model"
            out.append({key: value.removeprefix(ROUTE)})
        return out

    def clean(self):
        cleaned = super().clean()
        version = cleaned.get("prompt_version")
        if version is None and not (cleaned.get("user_prompt") or "").strip():
            self.add_error("user_prompt", "Write the prompt, or pick a saved prompt version.")
        cleaned["scorers"] = self._scorers()
        return cleaned

    def _scorers(self) -> list[dict]:
        out = []
        for kind in scorers.KINDS:
            if not self.data.get(f"scorer-{kind}"):
                continue
            spec = {"kind": kind} | {
                s: self.data.get(f"{kind}-{s}", "") for s in SCORER_FIELDS.get(kind, ())
            }
            if kind == "judge" and spec["model"] not in dict(self.judges):
                spec["model"] = ""  # an unknown or disabled model: "pick the model"
            try:
                out.append(scorers.validate(spec))
            except scorers.ScorerError as exc:
                self.scorer_errors[kind] = str(exc)
        if self.scorer_errors:
            self.add_error(None, "A scorer's settings need fixing: see below.")
        return out

    def experiment_fields(self) -> dict:
        """What experiments.create takes, from the prompt version or the typed prompt."""
        data = self.cleaned_data
        version = data.get("prompt_version")
        params = {k: data[k] for k in ("max_tokens", "temperature") if data.get(k) is not None}
        prompt = {
            "system_prompt": data.get("system_prompt", ""),
            "user_prompt": data.get("user_prompt", ""),
            "options": {},
        }
        if version is not None:
            column = (version.columns or [{}])[0]
            params = dict(column.get("params") or {}) | params
            prompt = {"system_prompt": version.system_prompt, "user_prompt": version.user_prompt,
                      "options": version.options or {}}  # fmt: skip
        return {
            "name": data["name"], "dataset_version": data["dataset_version"], "prompt_version": version,
            "parameters": params, "targets": data["targets"], "scorers": data["scorers"],
            "concurrency": data["concurrency"], "budget": data.get("budget"), **prompt,
        }  # fmt: skip


LABELS = {"value": "Text to find (blank: the expected output)", "pattern": "Pattern",
          "schema": "JSON Schema", "tolerance": "Tolerance", "min": "Minimum characters",
          "max": "Maximum", "max_ms": "Most milliseconds", "model": "Judging model",
          "rubric": "Rubric, with {{input}}, {{output}} and {{expected}}", "scale": "Scale",
          "threshold": "Passing score (1-5)"}  # fmt: skip


def scorer_rows(form: ExperimentForm, posted) -> list[dict]:
    """Each scorer's checkbox and settings fields as the page shows them."""
    rows = []
    for kind, label in scorers.KINDS.items():
        settings = []
        for name in SCORER_FIELDS.get(kind, ()):
            field = {
                "id": f"{kind}-{name}",
                "label": LABELS[name],
                "value": posted.get(f"{kind}-{name}", ""),
            }
            if kind == "judge" and name == "model":
                field["choices"] = [("", "— choose —"), *form.judges]
            elif kind == "judge" and name == "scale":
                field["choices"] = [("1-5", "a score of 1 to 5"), ("pass_fail", "pass or fail")]
            field["long"] = name in ("rubric", "schema")
            settings.append(field)
        rows.append({"kind": kind, "label": label, "checked": bool(posted.get(f"scorer-{kind}")),
                     "settings": settings, "error": form.scorer_errors.get(kind, "")})  # fmt: skip
    return rows
