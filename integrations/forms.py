"""Forms behind Test then Save, and the auth profile form.

Small forms validate one thing each: `IntegrationForm` (endpoint, protocol, auth, TLS,
proxy), `ModelFieldsForm` (model ID, defaults, body, prices) and the header rows.
`ConnectionPage` composes the ones a page needs (Add, integration edit, model add or
edit), builds the configuration the test sends and describes the change; forms
validate, `integrations.writes` writes.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import replace

from django import forms
from django.core.exceptions import ValidationError

from integrations import services, writes
from integrations.held import HeldSecretInput, HeldValueInput, HoldsSecrets
from integrations.llm import inputs
from integrations.llm.auth import AUTH_KINDS, FIELD_LABELS, kinds_using
from integrations.llm.config import AuthConfig, Header, LLMConfig
from integrations.llm.errors import LLMError
from integrations.llm.presets import PRESETS
from integrations.llm.protocols import adapter_for, parse_template, unknown_placeholders
from integrations.models import (
    AuthKind,
    AuthProfile,
    CustomModel,
    Integration,
    IntegrationHeader,
    Protocol,
)
from integrations.secrets import UnreadableSecret, mask

NEW = "new"
SECRET_INPUT = {"autocomplete": "new-password", "spellcheck": "false"}


def secret_input(placeholder: str = "") -> HeldSecretInput:
    """A secret field's input: never rendered back, held across an error re-render."""
    return HeldSecretInput(attrs=SECRET_INPUT | {"placeholder": placeholder})


class HeaderRowForm(HoldsSecrets, forms.Form):
    id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    name = forms.CharField(max_length=200, required=False, label="Header name")
    value = forms.CharField(required=False, strip=False, label="Value", widget=HeldValueInput)
    secret = forms.BooleanField(required=False, label="Secret")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.bind_held_secrets(user)

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


def field_rule(rule, value, *args):
    """Run one of the edge rules of integrations.llm.inputs as a form field check."""
    try:
        return rule(value, *args)
    except inputs.InputError as exc:
        raise ValidationError(str(exc)) from exc


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


def default_template_text(protocol: str) -> str:
    return json.dumps(adapter_for(protocol).default_template(), indent=2)


class AuthFieldsMixin:
    """Auth fields from the registry, shared by the inline and the profile forms: which to
    require for a kind, and which kinds show each field."""

    @property
    def credential_fields(self) -> list:
        """Return the auth fields in the registry's order, each showing for its kinds."""
        prefix = "new_auth_" if "new_auth_kind" in self.fields else ""
        fields = []
        for name in FIELD_LABELS:
            if f"{prefix}{name}" in self.fields:
                field = self.fields[f"{prefix}{name}"]
                field.show_when = f"{prefix}kind={','.join(kinds_using(name))}"
                fields.append(self[f"{prefix}{name}"])
        return fields

    def check_auth_fields(self, kind: str, values: dict, prefix: str, stored: AuthProfile | None):
        spec = AUTH_KINDS.get(kind)
        for field in spec.required if spec else ():
            has_stored = stored is not None and bool(getattr(stored, field, ""))
            if not values.get(field) and not has_stored:
                self.add_error(f"{prefix}{field}", "Required for this kind of authentication.")


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
        self.bind_held_secrets(user)
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
        others = Integration.objects.filter(name__iexact=name)
        if self.integration is not None:
            others = others.exclude(pk=self.integration.pk)
        if others.exists():
            raise ValidationError("An integration with this name exists already.")
        return name

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
            elif AuthProfile.objects.filter(name__iexact=name).exists():
                self.add_error("new_auth_name", "An auth profile with this name exists already.")
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


class ModelFieldsForm(HoldsSecrets, forms.Form):
    """A model's own fields: its ID, defaults, test parameters, request body and prices."""

    model_name = forms.CharField(label="Model name", max_length=100)
    model_id = forms.CharField(
        label="Model ID", max_length=200, help_text="The `model` sent upstream."
    )
    model_description = forms.CharField(
        label="Model description", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    max_tokens = forms.IntegerField(
        label="Default max_tokens", required=False, min_value=1, max_value=inputs.MAX_INT
    )
    temperature = forms.FloatField(
        label="Default temperature", required=False, min_value=0, max_value=2
    )
    test_max_tokens = forms.IntegerField(
        label="Test parameters (max_tokens)", min_value=1, max_value=32000, initial=64
    )
    request_template = forms.CharField(
        label="Request body (JSON)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "class": "code", "spellcheck": "false"}),
        help_text="The complete JSON body. Placeholders: {{model}}, {{system_prompt}}, "
        "{{user_prompt}}, {{messages}}, {{max_tokens}}, {{temperature}}.",
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
                model_description=model.description,
                max_tokens=model.max_tokens,
                temperature=model.temperature,
                test_max_tokens=(model.test_model_parameters or {}).get("max_tokens", 64),
                price_input_per_mtok=model.price_input_per_mtok,
                price_output_per_mtok=model.price_output_per_mtok,
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
        if self.integration is not None:
            others = CustomModel.objects.filter(integration=self.integration, name__iexact=name)
            if self.model is not None:
                others = others.exclude(pk=self.model.pk)
            if others.exists():
                raise ValidationError("This integration has a model with this name already.")
        return name

    def clean_request_template(self):
        text = self.cleaned_data.get("request_template", "").strip()
        if not text:
            return None
        try:
            template = parse_template(text)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        if not isinstance(template, dict):
            raise ValidationError("The request body must be a JSON object.")
        unknown = unknown_placeholders(template)
        if unknown:
            raise ValidationError(f"Unknown placeholder(s): {', '.join(sorted(unknown))}.")
        return template


class ConnectionPage:
    """The Add page, the integration edit and the model add/edit pages: the small forms a
    mode needs, composed. It validates them together, builds the configuration the test
    sends (binding typed secrets to where they go), and describes the change to write.

    - mode "add": an integration, its auth and headers, and its first model;
    - mode "integration": an integration, tested with one of its models;
    - mode "model": a model of a saved integration.
    """

    def __init__(
        self, data=None, *, mode: str = "add", integration=None, model=None, user=None, initial=None
    ):
        self.mode, self.integration, self.model, self.user = mode, integration, model, user
        self.is_bound = data is not None
        self.integration_form = (
            IntegrationForm(data, integration=integration, user=user, mode=mode, initial=initial)
            if mode != "model"
            else None
        )
        self.model_form = (
            ModelFieldsForm(data, integration=integration, model=model, initial=initial)
            if mode != "integration"
            else None
        )
        self.headers = (
            HeaderFormSet(
                data,
                prefix="headers",
                initial=header_initial(integration),
                form_kwargs={"user": user},
            )
            if mode != "model"
            else None
        )
        self.forms = [f for f in (self.integration_form, self.model_form) if f is not None]
        self.needs_reentry = False
        self.config: LLMConfig | None = None
        self.test_params: dict = {}
        self.template_to_save = None
        self._errors: list[str] = []

    # --- what templates and views ask of a form -------------------------------------------

    def __getitem__(self, name: str):
        for form in self.forms:
            if name in form.fields:
                return form[name]
        raise KeyError(name)

    @property
    def fields(self) -> dict:
        return {name: f for form in self.forms for name, f in form.fields.items()}

    @property
    def cleaned_data(self) -> dict:
        return {k: v for form in self.forms for k, v in getattr(form, "cleaned_data", {}).items()}

    @property
    def warnings(self) -> list[str]:
        return self.integration_form.warnings if self.integration_form else []

    @property
    def credential_fields(self) -> list:
        return self.integration_form.credential_fields if self.integration_form else []

    def add_error(self, field: str | None, message: str) -> None:
        for form in self.forms:
            if field is None or field in form.fields:
                form.add_error(field, message)
                return

    def has_error(self, field: str) -> bool:
        return any(form.has_error(field) for form in self.forms if field in form.fields)

    def non_field_errors(self) -> list[str]:
        return [e for form in self.forms for e in form.non_field_errors()]

    @property
    def errors(self) -> dict:
        return {k: v for form in self.forms for k, v in form.errors.items()}

    # --- validation -----------------------------------------------------------------------

    def is_valid(self) -> bool:
        valid = all([form.is_valid() for form in self.forms])
        valid = (self.headers is None or self.headers.is_valid()) and valid
        data = self.cleaned_data
        custom = data.get("protocol") == Protocol.CUSTOM
        if valid and custom and self.mode == "add" and not data.get("request_template"):
            self.add_error("request_template", "A custom protocol needs a request body template.")
            return False
        if valid:
            self.build_config()
        return valid and not self.errors

    def build_config(self) -> None:
        """Set .config and .test_params from valid data, or add errors."""
        data = self.cleaned_data
        try:
            if self.mode == "model":
                base = services.config_for(self.integration)
            else:
                fields = {name: data.get(name) for name in services.CONFIG_FIELDS}
                fields["request_template"] = (
                    self.integration.request_template if self.integration else None
                )
                base = services.integration_config(
                    fields, self.integration_form.auth_config(), self._headers()
                )
        except LLMError as exc:
            self.add_error(None, exc.message)
            return
        if self.mode == "integration":
            model = self.integration.models.filter(pk=data.get("test_model")).first()
            if model is None:
                self.add_error("test_model", "Choose a model to test with.")
                return
            self.config = replace(
                base,
                model_id=model.model_id,
                default_params=_defaults(model.max_tokens, model.temperature),
                request_template=model.request_template or base.request_template,
            )
            self.test_params = model.test_model_parameters or dict(services.DEFAULT_TEST_PARAMETERS)
            self._check_bindings()
            return
        template = data.get("request_template")
        if template == adapter_for(base.protocol).default_template():
            template = None  # the protocol's own body: no override to store
        self.config = replace(
            base,
            model_id=data["model_id"].strip(),
            default_params=_defaults(data.get("max_tokens"), data.get("temperature")),
            request_template=template if template is not None else base.request_template,
        )
        self.template_to_save = template
        self.test_params = {"max_tokens": data["test_max_tokens"]}
        if self.mode == "add":
            self._check_bindings()

    def _stored_headers(self) -> dict[int, IntegrationHeader]:
        if self.integration is None:
            return {}
        return {h.pk: h for h in self.integration.headers.all()}

    def _headers(self) -> tuple[Header, ...]:
        """Return the header rows; a blank secret keeps its stored value and binding."""
        stored = self._stored_headers()
        rows = []
        self._header_forms, self._typed_headers = [], set()
        for form in self.headers.forms:
            row = form.cleaned_data
            if not row or row.get("DELETE") or not row.get("name"):
                continue
            value = row.get("value", "")
            old = stored.get(row.get("id"))
            if not value and old is not None and old.secret and not row.get("secret"):
                # Unticking "secret" would publish the stored value: it takes a new one.
                form.add_error("value", "Type a new value to make this header not secret.")
                self.add_error(None, "A header can stop being secret only with a new value.")
            if not value and old is not None and row.get("secret") and old.secret:
                if isinstance(old.value, UnreadableSecret):
                    raise LLMError("credential", f"Header {old.name!r} unreadable: re-enter it.")
                value = old.value  # blank secret keeps the stored value
                rows.append(Header(row["name"], value, True, frozenset(old.bound_origins or ())))
            else:
                self._typed_headers.add(row["name"])
                rows.append(Header(row["name"], value, bool(row.get("secret"))))
            self._header_forms.append(form)
        return tuple(rows)

    def _check_bindings(self) -> None:
        """A stored secret goes only where it was entered for; typing it again binds it here.

        The client refuses unbound routes anyway (check_route); this turns the refusal
        into a message next to the field before anything is sent.
        """
        config = self.config
        try:
            routes, route = config.auth_routes(), config.route()
        except inputs.InputError as exc:
            self.add_error(None, str(exc))
            return
        auth = config.auth
        profile = self.cleaned_data.get("profile")
        if self.cleaned_data.get("auth_profile") == NEW:
            auth = auth.bound_to(*routes)  # typed on this page, for this endpoint
        elif profile is not None and auth.secrets():
            missing = services.unbound(auth.bound, routes, profile.created_by_id, self.user)
            typed = self.cleaned_data.get("auth_reentry", "")
            if not missing:
                auth = auth.bound_to(*routes)
            elif not typed:
                self.add_error(
                    "auth_reentry",
                    f"The secret of {profile.name} was entered for "
                    f"{', '.join(sorted(auth.bound)) or 'another origin'}: type it again to "
                    f"send it to {', '.join(sorted(missing))}.",
                )
            elif not any(hmac.compare_digest(typed.encode(), s.encode()) for s in auth.secrets()):
                self.add_error("auth_reentry", "This does not match the stored secret.")
            else:
                auth = auth.bound_to(*routes)
        headers = []
        for form, header in zip(self._header_forms, config.headers, strict=True):
            if header.secret and header.name in self._typed_headers:
                header = replace(header, bound=header.bound | {route})
            elif header.secret and header.value and route not in header.bound:
                form.add_error("value", f"Type this secret again to send it to {route}.")
                self.add_error(None, "Secret header values must be typed again for a new origin.")
            headers.append(header)
        self.config = replace(config, auth=auth, headers=tuple(headers))
        self.needs_reentry = self.has_error("auth_reentry")

    # --- what to write -----------------------------------------------------------------

    # --- what to write -----------------------------------------------------------------

    def fingerprint(self) -> str:
        return services.fingerprint(self.config, self.test_params)

    def change(self) -> writes.ConnectionChange:
        """Return what this valid form asks to write; writes.save_connection writes it."""
        data = self.cleaned_data
        change = writes.ConnectionChange(
            config=self.config,
            test_params=self.test_params,
            integration=self.integration,
            model=self.model,
            subject=self.subject(),
        )
        if self.mode != "model":
            names = [f for f in writes.INTEGRATION_FIELDS if f != "name"]
            change.integration_fields = {f: data[f] for f in names if f in data}
            change.integration_fields["name"] = data["integration_name"]
            if data.get("auth_profile") == NEW:
                change.new_profile_name = data["new_auth_name"].strip()
            else:
                change.profile = data.get("profile")
            change.header_ids = {
                f.cleaned_data["name"]: f.cleaned_data.get("id")
                for f in self.headers.forms
                if f.cleaned_data.get("name") and not f.cleaned_data.get("DELETE")
            }
        if self.mode == "integration":
            change.test_model = self.integration.models.filter(pk=data["test_model"]).first()
        else:
            change.model_fields = {
                "name": data["model_name"],
                "model_id": data["model_id"].strip(),
                "description": data.get("model_description", ""),
                "max_tokens": data.get("max_tokens"),
                "temperature": data.get("temperature"),
                "test_model_parameters": self.test_params,
                "request_template": self.template_to_save,
                "price_input_per_mtok": data.get("price_input_per_mtok"),
                "price_output_per_mtok": data.get("price_output_per_mtok"),
            }
        return change

    def subject(self) -> str:
        """Return how tests of this form are labelled: integration / model."""
        name = self.cleaned_data.get("integration_name") or self.integration.name
        if self.mode != "integration":
            name += f" / {self.cleaned_data['model_name']}"
        return name


def _defaults(max_tokens, temperature) -> dict:
    return {
        k: v for k, v in (("max_tokens", max_tokens), ("temperature", temperature)) if v is not None
    }


class AuthProfileForm(HoldsSecrets, AuthFieldsMixin, forms.ModelForm):
    """Create or edit an auth profile; secrets are blank and kept when left blank."""

    class Meta:
        model = AuthProfile
        fields = [
            "name", "kind", "token", "header_name", "query_param", "body_path", "username",
            "password", "token_url", "client_id", "client_secret", "scope",
        ]  # fmt: skip
        labels = {"token": "API key / token", "kind": "Type"}

    def __init__(self, *args, user=None, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)
        for name in AuthProfile.SECRET_FIELDS:
            field = self.fields[name]
            stored = getattr(self.instance, name) if self.instance.pk else ""
            field.widget = secret_input("leave blank to keep" if stored else "")
            field.widget.user = user
            field.required = False
            field.strip = False
            if stored:
                field.help_text = f"Stored: {mask(stored)}. Leave blank to keep."

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if AuthProfile.objects.filter(name__iexact=name).exclude(pk=self.instance.pk).exists():
            raise ValidationError("An auth profile with this name exists already.")
        return name

    def clean_header_name(self) -> str:
        name = self.cleaned_data.get("header_name", "").strip()
        return field_rule(inputs.check_header_name, name) if name else name

    def clean_token_url(self) -> str:
        url = self.cleaned_data.get("token_url", "").strip()
        if url:
            field_rule(inputs.parse_url, url, "token URL")
        return url

    def clean(self):
        cleaned = super().clean()
        stored = (
            AuthProfile.objects.filter(pk=self.instance.pk).first() if self.instance.pk else None
        )
        typed = {name for name in AuthProfile.SECRET_FIELDS if cleaned.get(name)}
        for name in AuthProfile.SECRET_FIELDS:
            if not cleaned.get(name) and stored is not None:
                cleaned[name] = getattr(stored, name)
        kind = cleaned.get("kind", AuthKind.NONE)
        self.check_auth_fields(kind, cleaned, "", stored)
        if kind in (AuthKind.BEARER, AuthKind.HEADER) and "token" in typed:
            try:
                inputs.check_header_value(cleaned["token"], "A key sent in a header")
            except inputs.InputError as exc:
                self.add_error("token", str(exc))
        self._bind(cleaned, stored, typed)
        return cleaned

    def _bind(self, cleaned: dict, stored: AuthProfile | None, typed: set[str]) -> None:
        """A secret typed here is bound to where the profile is used; a kept one keeps its
        routes, and may not follow a token URL to a new origin."""
        token_url = cleaned.get("token_url", "") if cleaned.get("kind") == AuthKind.OAUTH2 else ""
        try:
            routes = services.profile_routes(self.instance, token_url)
        except inputs.InputError:
            return  # the token URL's own error is already on the field
        if typed:
            self.instance.bound_origins = sorted(routes)
            return
        bound = stored.bound_origins if stored is not None else []
        if token_url and stored is not None and stored.client_secret:
            missing = services.unbound(bound, routes, stored.created_by_id, self.user)
            if missing:
                self.add_error(
                    "client_secret",
                    f"The token URL moved: type the client secret again to send it to "
                    f"{', '.join(sorted(missing))}.",
                )
        self.instance.bound_origins = list(bound)
