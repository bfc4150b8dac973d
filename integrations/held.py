"""A secret typed into a form that comes back with an error is not lost, nor echoed.

Password inputs render empty, so a re-rendered form used to drop what was typed and a
later Save stored a blank (or kept the old key while saying "saved"). Instead the
typed value is held server-side, encrypted, for a receipt's lifetime and only for the
person who typed it; the page carries a random handle in a hidden input. A blank
field with a handle means "what I typed before"; typing again replaces it.
"""

from __future__ import annotations

import secrets

from django import forms
from django.core.cache import cache
from django.utils.html import format_html

from integrations.receipts import MAX_AGE_SECONDS
from integrations.secrets import decrypt, encrypt

SUFFIX = "__held"


def _key(user, handle: str) -> str:
    return f"held-secret:{getattr(user, 'pk', '')}:{handle}"


def hold(value: str, user) -> str:
    """Keep value for this user; return the handle the page may carry."""
    handle = secrets.token_urlsafe(24)
    cache.set(_key(user, handle), encrypt(value), MAX_AGE_SECONDS)
    return handle


def take(handle: str, user) -> str:
    """Return what this user typed under handle, or "" if it is unknown or expired."""
    if not handle or user is None or not getattr(user, "is_authenticated", False):
        return ""
    stored = cache.get(_key(user, handle))
    value = decrypt(stored) if stored else ""
    return value if isinstance(value, str) else ""


class HeldSecretInput(forms.PasswordInput):
    """A password input that hands back, on the next post, what was typed before."""

    def __init__(self, attrs=None, user=None):
        super().__init__(attrs, render_value=False)
        self.user = user

    def render(self, name, value, attrs=None, renderer=None):
        typed = value if isinstance(value, str) else ""
        handle = hold(typed, self.user) if typed and self.user is not None else ""
        if handle:
            attrs = {**(attrs or {}), "placeholder": "kept from your last try; type to replace"}
        html = super().render(name, None, attrs, renderer)
        if handle:
            html += format_html('<input type="hidden" name="{}" value="{}">', name + SUFFIX, handle)
        return html

    def value_from_datadict(self, data, files, name):
        typed = data.get(name, "")
        return typed or take(data.get(name + SUFFIX, ""), self.user)


class HeldValueInput(forms.TextInput):
    """For a field the template renders by hand (header rows): reads a held value back;
    the template asks `held_handle` for the hidden input."""

    user = None
    value_from_datadict = HeldSecretInput.value_from_datadict


def held_handle(value: str, user) -> str:
    """Return a handle for a value typed into a row the template renders by hand."""
    return hold(value, user) if value and user is not None else ""


class HoldsSecrets:
    """Form mixin: tells the held-secret widgets whose secrets they hold."""

    def bind_held_secrets(self, user) -> None:
        for field in self.fields.values():
            if isinstance(field.widget, HeldSecretInput | HeldValueInput):
                field.widget.user = user
