"""The Sandbox says what a blank Max tokens sends, for the model picked."""

from __future__ import annotations

import pytest

from sandbox.forms import ColumnForm

pytestmark = pytest.mark.django_db


def test_a_blank_max_tokens_says_what_is_sent(make_integration):
    anthropic = make_integration(name="Claude", protocol="anthropic-messages")
    form = ColumnForm(model=anthropic)
    assert form.fields["max_tokens"].widget.attrs["placeholder"] == "1,024 (sent when blank)"
    with_default = make_integration(name="Local 2", max_tokens=300)
    form = ColumnForm(model=with_default)
    assert form.fields["max_tokens"].widget.attrs["placeholder"] == "300 (the model's default)"
    plain = make_integration(name="Local 3")
    form = ColumnForm(model=plain)
    assert "placeholder" not in form.fields["max_tokens"].widget.attrs
    assert "server's own limit" in form.fields["max_tokens"].help_text
