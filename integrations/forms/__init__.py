"""The console's forms: small ones that validate; `integrations.writes` writes."""

from integrations.forms.auth import AuthFieldsMixin, AuthProfileForm
from integrations.forms.common import NEW, default_template_text, field_rule, secret_input
from integrations.forms.headers import HeaderFormSet, HeaderRowForm, header_initial
from integrations.forms.integration import IntegrationForm
from integrations.forms.model import ModelFieldsForm
from integrations.forms.page import ConnectionPage

__all__ = [
    "NEW",
    "AuthFieldsMixin",
    "AuthProfileForm",
    "ConnectionPage",
    "HeaderFormSet",
    "HeaderRowForm",
    "IntegrationForm",
    "ModelFieldsForm",
    "default_template_text",
    "field_rule",
    "header_initial",
    "secret_input",
]
