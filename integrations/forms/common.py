"""What every console form shares: secret inputs, edge-rule checks, the new-profile marker."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError

from integrations.held import HeldSecretInput
from integrations.llm import inputs
from integrations.llm.protocols import adapter_for

NEW = "new"
SECRET_INPUT = {"autocomplete": "new-password", "spellcheck": "false"}


def secret_input(placeholder: str = "") -> HeldSecretInput:
    """A secret field's input: never rendered back, held across an error re-render."""
    return HeldSecretInput(attrs=SECRET_INPUT | {"placeholder": placeholder})


def field_rule(rule, value, *args):
    """Run one of the edge rules of integrations.llm.inputs as a form field check."""
    try:
        return rule(value, *args)
    except inputs.InputError as exc:
        raise ValidationError(str(exc)) from exc


def default_template_text(protocol: str) -> str:
    return json.dumps(adapter_for(protocol).default_template(), indent=2)
