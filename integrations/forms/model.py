"""A model's own fields: ID, defaults, test parameters, request body, prices."""

from __future__ import annotations

import json

from django import forms
from django.core.exceptions import ValidationError

from integrations import names
from integrations.forms.common import default_template_text
from integrations.llm import inputs
from integrations.llm.protocols import ADAPTERS
from integrations.llm.wires import template as templates
from integrations.models import (
    CustomModel,
    ModelKind,
    Protocol,
)


def _protocol_defaults() -> list:
    return [adapter.default_template() for adapter in ADAPTERS.values()]


def _blank_max_tokens() -> str:
    """What is sent when the field is blank, said for each protocol that sends something."""
    from integrations.llm.protocols import ADAPTERS

    sent = [
        f"{a.label}: {a.default_max_tokens:,}" for a in ADAPTERS.values() if a.default_max_tokens
    ]
    said = "Blank: none is sent (the server's default applies)"
    return f"{said}, except {'; '.join(sent)} (the protocol requires one)." if sent else said + "."


class ModelFieldsForm(forms.Form):
    """A model's own fields: its ID, defaults, test parameters, request body and prices."""

    model_name = forms.CharField(label="Model name", max_length=100)
    model_id = forms.CharField(
        label="Model ID", max_length=200, help_text="The `model` sent upstream."
    )
    kind = forms.ChoiceField(
        label="Kind",
        required=False,
        choices=ModelKind.choices,
        initial=ModelKind.CHAT,
        help_text="Chat models answer conversations (/v1/chat/completions, /v1/messages, "
        "/v1/responses); embeddings models turn texts into vectors (/v1/embeddings).",
    )
    model_description = forms.CharField(
        label="Model description", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    gateway_alias = forms.RegexField(
        label="Gateway alias",
        required=False,
        max_length=100,
        regex=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
        error_messages={"invalid": "Letters, digits and . _ : / - only, no spaces."},
        help_text="What apps may pass as `model` to the gateway (/v1), e.g. gpt-4o-mini. "
        "Blank: the model name.",
    )
    max_tokens = forms.IntegerField(
        label="Default max_tokens", required=False, min_value=1, max_value=inputs.MAX_INT,
        help_text=_blank_max_tokens(),
    )  # fmt: skip
    temperature = forms.FloatField(
        label="Default temperature", required=False, min_value=0, max_value=2
    )
    test_max_tokens = forms.IntegerField(
        label="Test parameters (max_tokens)", min_value=1, max_value=32000, initial=64
    )
    test_prompt = forms.CharField(
        label="Test message",
        required=False,
        max_length=2000,
        help_text="What the Test button asks the model. Blank: “Reply with the single word: pong”.",
        widget=forms.TextInput(attrs={"placeholder": "Reply with the single word: pong"}),
    )
    request_template = forms.CharField(
        label="Request body (JSON)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "class": "code", "spellcheck": "false"}),
        help_text="The complete JSON body. Placeholders: {{model}}, {{system_prompt}}, "
        "{{user_prompt}}, {{messages}} (OpenAI-shaped, tool calls and results included), "
        "{{tools}}, {{tool_choice}}, {{max_tokens}}, {{temperature}}, {{top_p}}, {{stop}}. "
        "It must carry the conversation: {{messages}} or {{user_prompt}}. An embeddings "
        "model's body takes {{input}} (the texts) and {{dimensions}}.",
    )
    price_input_per_mtok = forms.DecimalField(
        label="Price per 1M input tokens",
        required=False,
        min_value=0,
        decimal_places=6,
        max_digits=12,
    )
    price_output_per_mtok = forms.DecimalField(
        label="Price per 1M output tokens",
        required=False,
        min_value=0,
        decimal_places=6,
        max_digits=12,
    )
    context_window = forms.IntegerField(
        label="Context window (tokens)",
        required=False,
        min_value=1,
        max_value=inputs.MAX_INT,
        help_text="What a gateway budget reserves for a call that names no max_tokens.",
    )

    def __init__(self, data=None, *, integration=None, model=None, initial=None):
        self.integration, self.model = integration, model
        super().__init__(data, initial=self.initial_values() | (initial or {}))

    def initial_values(self) -> dict:
        model, integration = self.model, self.integration
        initial: dict = {}
        if model is not None:
            initial.update(
                model_name=model.name,
                model_id=model.model_id,
                kind=model.kind,
                model_description=model.description,
                gateway_alias=model.gateway_alias,
                max_tokens=model.max_tokens,
                temperature=model.temperature,
                test_max_tokens=(model.test_model_parameters or {}).get("max_tokens", 64),
                test_prompt=(model.test_model_parameters or {}).get("prompt", ""),
                price_input_per_mtok=model.price_input_per_mtok,
                price_output_per_mtok=model.price_output_per_mtok,
                context_window=model.context_window,
            )
        protocol = integration.protocol if integration else Protocol.OPENAI_CHAT
        template = (model.request_template if model else None) or (
            integration.request_template if integration else None
        )
        initial["request_template"] = (
            json.dumps(template, indent=2) if template else default_template_text(protocol)
        )
        return initial

    def clean_model_name(self) -> str:
        name = self.cleaned_data["model_name"].strip()
        if problem := names.taken(
            CustomModel, name, exclude=self.model, integration=self.integration
        ):
            raise ValidationError(problem)
        return name

    def clean_gateway_alias(self) -> str:
        alias = self.cleaned_data.get("gateway_alias", "").strip()
        others = CustomModel.objects.filter(gateway_alias=alias)
        if self.model is not None:
            others = others.exclude(pk=self.model.pk)
        if alias and others.exists():
            raise ValidationError("Another model has this gateway alias.")
        return alias

    def clean_request_template(self):
        text = self.cleaned_data.get("request_template", "").strip()
        if not text:
            return None
        try:
            template = templates.parse(text)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        if not isinstance(template, dict):
            raise ValidationError("The request body must be a JSON object.")
        unknown = templates.unknown_placeholders(template)
        if unknown:
            raise ValidationError(f"Unknown placeholder(s): {', '.join(sorted(unknown))}.")
        kind = self.cleaned_data.get("kind") or ModelKind.CHAT
        if kind == ModelKind.EMBEDDINGS and template in _protocol_defaults():
            return template  # the protocol's own body: not sent, the embeddings body is
        if problem := templates.conversation_problem(template, kind):
            raise ValidationError(problem)
        return template
