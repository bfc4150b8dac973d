"""A secret typed into a form that comes back with an error is not lost, nor echoed.

Password inputs render empty, so a re-rendered form used to drop what was typed and a
later Save stored a blank (or kept the old key while saying "saved"). Instead the
typed value is held server-side, encrypted, for a receipt's lifetime, and the page
carries a random handle in a hidden input. A blank field with a handle means "what I
typed before"; typing again replaces it.

A handle stands only for what its holder typed, and only where it was typed:
- it is made only from a value this very post carried in the field (typed, or taken
  back from a handle of the same field), never from a form's initial data, which for
  an edit page can hold a stored secret;
- it is keyed by the user, the form's scope (the page and the configuration it edits)
  and the field's name, so it cannot stand in for a stored secret anywhere else: a
  handle from a profile's edit page means nothing on the Add page or another profile.
"""

from __future__ import annotations

import secrets

from django import forms
from django.core.cache import cache
from django.utils.html import format_html

from integrations.receipts import MAX_AGE_SECONDS
from integrations.secrets import decrypt, encrypt

SUFFIX = "__held"


def _key(user, scope: str, field: str, handle: str) -> str:
    return f"held-secret:{getattr(user, 'pk', '')}:{scope}:{field}:{handle}"


def _person(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False)


def hold(value: str, user, scope: str, field: str) -> str:
    """Keep what this user typed into this field of this form; return the page's handle."""
    if not value or not _person(user):
        return ""
    handle = secrets.token_urlsafe(24)
    cache.set(_key(user, scope, field, handle), encrypt(value), MAX_AGE_SECONDS)
    return handle


def take(handle: str, user, scope: str, field: str) -> str:
    """Return what this user typed under handle in this field and form, or ""."""
    if not handle or not isinstance(handle, str) or not _person(user):
        return ""
    stored = cache.get(_key(user, scope, field, handle))
    value = decrypt(stored) if stored else ""
    return value if isinstance(value, str) else ""


class _Holding:
    """What a held-secret widget knows: whose form it is in, and what this post carried."""

    user = None
    scope = ""

    def __deepcopy__(self, memo):
        copied = super().__deepcopy__(memo)
        copied.__dict__.pop("_posted", None)  # each form's copy remembers its own post
        return copied

    def posted_value(self, data, name: str) -> str:
        typed = data.get(name, "")
        if not isinstance(typed, str):
            typed = ""
        value = typed or take(data.get(name + SUFFIX, ""), self.user, self.scope, name)
        # Remember it: only a value that came in with this post may be held again.
        self.__dict__.setdefault("_posted", {})[name] = value
        return value

    def handle_for(self, name: str, value) -> str:
        """A handle for the value about to be rendered, if this post carried it."""
        posted = self.__dict__.get("_posted", {}).get(name)
        if not posted or value != posted:
            return ""
        return hold(posted, self.user, self.scope, name)


class HeldSecretInput(_Holding, forms.PasswordInput):
    """A password input that hands back, on the next post, what was typed before."""

    def __init__(self, attrs=None):
        super().__init__(attrs, render_value=False)

    def render(self, name, value, attrs=None, renderer=None):
        handle = self.handle_for(name, value)
        if handle:
            attrs = {**(attrs or {}), "placeholder": "kept from your last try; type to replace"}
        html = super().render(name, None, attrs, renderer)
        if handle:
            html += format_html('<input type="hidden" name="{}" value="{}">', name + SUFFIX, handle)
        return html

    def value_from_datadict(self, data, files, name):
        return self.posted_value(data, name)


class HeldValueInput(_Holding, forms.TextInput):
    """For a field the template renders by hand (header rows): reads a held value back;
    the template asks the `held_handle` filter for the hidden input."""

    def value_from_datadict(self, data, files, name):
        return self.posted_value(data, name)


def held_handle(bound_field) -> str:
    """Return the handle for a row value the template renders by hand, if it was posted."""
    widget = bound_field.field.widget
    if not isinstance(widget, _Holding):
        return ""
    return widget.handle_for(bound_field.html_name, bound_field.value())


class HoldsSecrets:
    """Form mixin: tells the held-secret widgets whose secrets they hold, and where.

    `scope` names the form and the configuration it edits ("add", "integration:<id>",
    "profile:<id>"): a handle is good only in the scope it was made in."""

    def bind_held_secrets(self, user, scope: str) -> None:
        for field in self.fields.values():
            if isinstance(field.widget, _Holding):
                field.widget.user = user
                field.widget.scope = scope
