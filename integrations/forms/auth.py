"""Auth fields from the registry, and the auth profile form."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from integrations import names, services
from integrations.forms.common import field_rule, secret_input
from integrations.held import HoldsSecrets
from integrations.llm import inputs
from integrations.llm.auth import AUTH_KINDS, FIELD_LABELS, kinds_using
from integrations.models import (
    AuthKind,
    AuthProfile,
)
from integrations.secrets import mask


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
            # A stored secret's plaintext never reaches a widget, not even a password one.
            self.initial[name] = ""
            field.widget = secret_input("leave blank to keep" if stored else "")
            field.required = False
            field.strip = False
            if stored:
                field.help_text = f"Stored: {mask(stored)}. Leave blank to keep."
        self.bind_held_secrets(user, f"profile:{self.instance.pk or 'new'}")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if problem := names.taken(AuthProfile, name, exclude=self.instance):
            raise ValidationError(problem)
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
