"""The Sandbox's embeddings tab: embed two texts with an embeddings model and see how
alike they are (cosine similarity), the vectors' dimensions and the tokens it took.
Each comparison is a Sandbox run like any other: kept in History, metered, audited."""

from __future__ import annotations

from django import forms
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from integrations.llm import client
from integrations.llm.chat import EmbeddingsInput
from integrations.llm.wires.openai_embeddings import MAX_DIMENSIONS, cosine
from integrations.models import ModelKind
from sandbox import ratelimit, services
from sandbox.models import SandboxRun

PAGE = "sandbox/embeddings.html"
MAX_TEXT = 20_000
SEPARATOR = "\n\n---\n\n"


def embeddings_models() -> list:
    groups: dict[str, list] = {}
    for pk, name, integration in (
        services.usable_models()
        .filter(kind=ModelKind.EMBEDDINGS)
        .values_list("id", "name", "integration__name")
    ):
        groups.setdefault(integration, []).append((str(pk), name))
    return list(groups.items())


class EmbeddingsForm(forms.Form):
    model = forms.ChoiceField(label="Embeddings model")
    text_a = forms.CharField(
        label="First text", max_length=MAX_TEXT, widget=forms.Textarea(attrs={"rows": 5})
    )
    text_b = forms.CharField(
        label="Second text", max_length=MAX_TEXT, widget=forms.Textarea(attrs={"rows": 5})
    )
    dimensions = forms.IntegerField(
        label="Dimensions",
        required=False,
        min_value=1,
        max_value=MAX_DIMENSIONS,
        help_text="Blank: the model's own. Only some models can shorten their vectors.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = embeddings_models()

    def clean_model(self):
        goal = services.target(self.cleaned_data["model"])
        if goal is None or goal.model.kind != ModelKind.EMBEDDINGS:
            raise forms.ValidationError("Choose an enabled embeddings model.")
        return goal


def compare(request, goal, text_a: str, text_b: str, dimensions: int | None):
    """Embed both texts in one call; return the run and their similarity (None if failed)."""
    result = goal.failed or client.call(goal.config, EmbeddingsInput((text_a, text_b), dimensions))
    similarity = None
    if result.ok and result.vectors is not None and len(result.vectors.vectors) == 2:
        similarity = cosine(*result.vectors.vectors)
        result.content = f"Cosine similarity {similarity:.4f} ({result.vectors.summary()})"
    run = SandboxRun(
        user=request.user,
        model=goal.model,
        model_name=goal.model.name,
        integration_name=goal.model.integration.name,
        user_prompt=text_a + SEPARATOR + text_b,
        parameters={"dimensions": dimensions} if dimensions else {},
        options={"embeddings": True},
    )
    run = services.finish(run, result, request)
    return run, similarity, result.vectors


@require_http_methods(["GET", "POST"])
def embeddings(request):
    form = EmbeddingsForm(request.POST or None)
    ctx: dict = {"form": form, "has_models": bool(form.fields["model"].choices)}
    if request.method == "POST" and form.is_valid():
        wait = ratelimit.check(request.user.pk, 1)
        if wait:
            form.add_error(None, f"Too many runs: try again in {wait} s.")
        else:
            data = form.cleaned_data
            run, similarity, vectors = compare(
                request, data["model"], data["text_a"], data["text_b"], data["dimensions"]
            )
            ctx.update(run=run, similarity=similarity, vectors=vectors)
    if request.htmx and request.method == "POST":
        return render(request, f"{PAGE}#result", ctx)
    return render(request, PAGE, ctx)
