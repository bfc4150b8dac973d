"""Forms behind Test then Save, and the auth profile form.

Small forms validate one thing each: `IntegrationForm` (endpoint, protocol, auth, TLS,
proxy), `ModelFieldsForm` (model ID, defaults, body, prices) and the header rows.
`ConnectionPage` composes the ones a page needs (Add, integration edit, model add or
edit), builds the configuration the test sends and describes the change; forms
validate, `integrations.writes` writes.
"""

from __future__ import annotations

import hmac
from dataclasses import replace

from integrations import services, writes
from integrations.forms.common import NEW
from integrations.forms.headers import HeaderFormSet, header_initial
from integrations.forms.integration import IntegrationForm, held_scope
from integrations.forms.model import ModelFieldsForm
from integrations.llm import inputs
from integrations.llm.config import Header, LLMConfig
from integrations.llm.errors import LLMError
from integrations.llm.protocols import adapter_for
from integrations.models import (
    IntegrationHeader,
    Protocol,
)
from integrations.secrets import UnreadableSecret


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
                form_kwargs={"user": user, "scope": held_scope(mode, integration)},
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
            self.config = services.model_config(base, services.model_fields(model))
            self.test_params = model.test_model_parameters or dict(services.DEFAULT_TEST_PARAMETERS)
            self._check_bindings()
            return
        template = data.get("request_template")
        if template == adapter_for(base.protocol).default_template():
            template = None  # the protocol's own body: no override to store
        self.config = services.model_config(
            base,
            {
                "model_id": data["model_id"],
                "kind": data.get("kind") or "chat",
                "max_tokens": data.get("max_tokens"),
                "temperature": data.get("temperature"),
                "request_template": template,
            },
        )
        self.template_to_save = template
        self.test_params = {"max_tokens": data["test_max_tokens"]}
        if data.get("test_prompt", "").strip():
            self.test_params["prompt"] = data["test_prompt"].strip()
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
                "kind": data.get("kind") or "chat",
                "description": data.get("model_description", ""),
                "gateway_alias": data.get("gateway_alias", ""),
                "max_tokens": data.get("max_tokens"),
                "temperature": data.get("temperature"),
                "test_model_parameters": self.test_params,
                "request_template": self.template_to_save,
                "price_input_per_mtok": data.get("price_input_per_mtok"),
                "price_output_per_mtok": data.get("price_output_per_mtok"),
                "context_window": data.get("context_window"),
            }
        return change

    def subject(self) -> str:
        """Return how tests of this form are labelled: integration / model."""
        name = self.cleaned_data.get("integration_name") or self.integration.name
        if self.mode != "integration":
            name += f" / {self.cleaned_data['model_name']}"
        return name
