"""An integration's own fields: endpoint, protocol, auth, TLS, proxy."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from integrations import names, services
from integrations.forms.auth import AuthFieldsMixin
from integrations.forms.common import NEW, field_rule, secret_input
from integrations.held import HoldsSecrets
from integrations.llm import inputs
from integrations.llm.config import AuthConfig
from integrations.llm.presets import PRESETS
from integrations.llm.protocols import adapter_for
from integrations.models import (
    AuthKind,
    AuthProfile,
    Integration,
    Protocol,
)


def held_scope(mode: str, integration) -> str:
    """Where a secret typed on a connection page may be held for: this page and row."""
    return f"{mode}:{integration.pk}" if integration is not None else mode


class IntegrationForm(HoldsSecrets, AuthFieldsMixin, forms.Form):
    """An integration's own fields: endpoint, protocol, auth (a profile, or a new one), TLS,
    proxy, response paths; on the edit page, the model to test a change with."""

    # Integration
    integration_name = forms.CharField(label="Integration name", max_length=100)
    description = forms.CharField(
        label="Description", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    preset = forms.ChoiceField(
        label="Provider preset",
        required=False,
        choices=[("", "— choose to prefill —")] + [(k, p.label) for k, p in PRESETS.items()],
    )
    endpoint = forms.CharField(
        label="Endpoint",
        max_length=2000,
        help_text="A base URL such as https://api.openai.com/v1, or the full URL ending in /chat/completions.",
    )
    protocol = forms.ChoiceField(
        label="Protocol", choices=Protocol.choices, initial=Protocol.OPENAI_CHAT
    )
    api_version = forms.CharField(label="API version", required=False, max_length=40)
    deployment = forms.CharField(label="Deployment", required=False, max_length=200)
    content_path = forms.CharField(label="Content path", required=False, max_length=200)
    finish_reason_path = forms.CharField(label="Finish reason path", required=False, max_length=200)
    prompt_tokens_path = forms.CharField(label="Prompt tokens path", required=False, max_length=200)
    completion_tokens_path = forms.CharField(
        label="Completion tokens path", required=False, max_length=200
    )
    total_tokens_path = forms.CharField(label="Total tokens path", required=False, max_length=200)
    tool_calls_path = forms.CharField(
        label="Tool calls path",
        required=False,
        max_length=200,
        help_text="Where the reply lists tool calls in OpenAI's shape, e.g. choices.0.message.tool_calls.",
    )
    timeout_seconds = forms.FloatField(
        label="Timeout (seconds)", min_value=1, max_value=600, initial=60
    )
    verify_tls = forms.BooleanField(label="Verify TLS certificates", required=False, initial=True)
    ca_bundle = forms.CharField(
        label="CA bundle (PEM)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "code"}),
    )
    proxy_url = forms.CharField(label="Proxy URL", required=False, max_length=2000)
    # Auth: pick a profile or create one inline
    auth_profile = forms.ChoiceField(label="Auth", required=False)
    auth_reentry = forms.CharField(
        label="Re-enter the auth profile's secret",
        required=False,
        strip=False,
        widget=secret_input(),
        help_text="Needed only when the stored secret would go to a new origin or proxy.",
    )
    new_auth_name = forms.CharField(label="Profile name", required=False, max_length=100)
    new_auth_kind = forms.ChoiceField(
        label="Type", choices=AuthKind.choices, initial=AuthKind.BEARER, required=False
    )
    new_auth_token = forms.CharField(
        label="API key / token", required=False, strip=False, widget=secret_input()
    )
    new_auth_header_name = forms.CharField(label="Header name", required=False, max_length=100)
    new_auth_query_param = forms.CharField(label="Query parameter", required=False, max_length=100)
    new_auth_body_path = forms.CharField(label="Body field path", required=False, max_length=200)
    new_auth_username = forms.CharField(label="Username", required=False, max_length=200)
    new_auth_password = forms.CharField(
        label="Password", required=False, strip=False, widget=secret_input()
    )
    new_auth_token_url = forms.URLField(label="Token URL", required=False, max_length=2000)
    new_auth_client_id = forms.CharField(label="Client ID", required=False, max_length=300)
    new_auth_client_secret = forms.CharField(
        label="Client secret", required=False, strip=False, widget=secret_input()
    )
    new_auth_scope = forms.CharField(label="Scope", required=False, max_length=500)
    test_model = forms.ChoiceField(label="Test with model", required=False)

    def __init__(self, data=None, *, integration=None, user=None, mode: str = "add", initial=None):
        self.integration, self.user, self.mode = integration, user, mode
        super().__init__(data, initial=self.initial_values() | (initial or {}))
        self.bind_held_secrets(user, held_scope(mode, integration))
        profiles = AuthProfile.objects.order_by("name").values_list("id", "name", "kind")
        kinds = dict(AuthKind.choices)
        self.fields["auth_profile"].choices = [
            ("", "No authentication"),
            (NEW, "Create a new auth profile…"),
        ] + [(str(pk), f"{name} ({kinds.get(kind, kind)})") for pk, name, kind in profiles]
        if mode == "integration":
            models = integration.models.values_list("id", "name", "model_id")
            self.fields["test_model"].choices = [(str(pk), f"{n} ({mid})") for pk, n, mid in models]
            self.fields["test_model"].required = True
        else:
            self.fields.pop("test_model")
        self.warnings: list[str] = []

    def initial_values(self) -> dict:
        integration = self.integration
        if integration is None:
            return {}
        first = integration.models.order_by("name").first()
        return {
            "integration_name": integration.name,
            "description": integration.description,
            **{f: getattr(integration, f) for f in services.CONFIG_FIELDS if f != "proxy_url"},
            "proxy_url": inputs.without_credentials(
                services.reveal_or_blank(integration.proxy_url)
            ),
            "auth_profile": str(integration.auth_profile_id or ""),
            "test_model": str(first.pk) if first else "",
        }

    def clean_integration_name(self) -> str:
        name = self.cleaned_data["integration_name"].strip()
        if problem := names.taken(Integration, name, exclude=self.integration):
            raise ValidationError(problem)
        return name

    def clean_ca_bundle(self) -> str:
        return field_rule(inputs.check_ca_bundle, self.cleaned_data.get("ca_bundle", ""))

    def clean_proxy_url(self) -> str:
        url = self.cleaned_data.get("proxy_url", "").strip()
        stored = services.reveal_or_blank(self.integration.proxy_url) if self.integration else ""
        if stored and url == inputs.without_credentials(stored):
            return stored  # shown masked, left as it was
        if url:
            field_rule(inputs.parse_url, url, "proxy URL", True)
        return url

    def clean_new_auth_header_name(self) -> str:
        name = self.cleaned_data.get("new_auth_header_name", "").strip()
        return field_rule(inputs.check_header_name, name) if name else name

    def clean(self):
        cleaned = super().clean()
        endpoint, protocol = cleaned.get("endpoint"), cleaned.get("protocol")
        if endpoint and protocol:
            try:
                inputs.parse_url(endpoint, "endpoint")
                base, self.warnings = adapter_for(protocol).normalize(endpoint)
                inputs.parse_url(base, "endpoint")
                cleaned["endpoint"] = base
            except (inputs.InputError, ValueError) as exc:
                self.add_error("endpoint", str(exc))
                cleaned.pop("endpoint", None)
        choice = cleaned.get("auth_profile", "")
        if choice == NEW:
            values = {
                k.removeprefix("new_auth_"): v
                for k, v in cleaned.items()
                if k.startswith("new_auth_")
            }
            name = values.get("name", "").strip()
            if not name:
                self.add_error("new_auth_name", "Name the new auth profile.")
            elif problem := names.taken(AuthProfile, name):
                self.add_error("new_auth_name", problem)
            kind = values.get("kind") or AuthKind.BEARER
            self.check_auth_fields(kind, values, "new_auth_", None)
            if kind in (AuthKind.BEARER, AuthKind.HEADER) and values.get("token"):
                try:
                    inputs.check_header_value(values["token"], "A key sent in a header")
                except inputs.InputError as exc:
                    self.add_error("new_auth_token", str(exc))
        elif choice:
            cleaned["profile"] = AuthProfile.objects.filter(pk=choice).first()
            if cleaned["profile"] is None:
                self.add_error("auth_profile", "That auth profile no longer exists.")
        return cleaned

    def auth_config(self) -> AuthConfig:
        """Return the auth this form chose: a new profile's typed fields, or a stored one."""
        data = self.cleaned_data
        choice = data.get("auth_profile", "")
        if choice == NEW:
            return AuthConfig(
                kind=data.get("new_auth_kind") or AuthKind.BEARER,
                token=data.get("new_auth_token", ""),
                header_name=data.get("new_auth_header_name", "").strip(),
                query_param=data.get("new_auth_query_param", "").strip(),
                body_path=data.get("new_auth_body_path", "").strip(),
                username=data.get("new_auth_username", ""),
                password=data.get("new_auth_password", ""),
                token_url=data.get("new_auth_token_url", ""),
                client_id=data.get("new_auth_client_id", ""),
                client_secret=data.get("new_auth_client_secret", ""),
                scope=data.get("new_auth_scope", ""),
            )
        return services.auth_config(data.get("profile"))
