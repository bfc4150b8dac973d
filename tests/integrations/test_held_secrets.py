"""A secret typed into a form that comes back with an error is kept (held server-side,
encrypted, per user) and never rendered back; a Save after the error stores it."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from integrations import held
from integrations.models import AuthProfile, IntegrationHeader
from tests.conftest import CANARY, CANARY_HEADER
from tests.integrations.test_connection_views import HX, add_payload
from tests.upstream import reply_json


def handles(html: str) -> dict[str, str]:
    return dict(re.findall(r'name="([^"]+__held)" value="([^"]+)"', html))


def test_a_typed_secret_survives_an_error_re_render_and_is_saved(client, bob, upstream):
    client.force_login(bob)
    data = add_payload(upstream, **{"model_name": ""})  # an error: the form comes back
    response = client.post(reverse("integration-add"), {**data, "action": "draft"}, headers=HX)
    html = response.content.decode()
    assert "This field is required" in html
    kept = handles(html)
    assert set(kept) == {"new_auth_token__held", "headers-0-value__held"}
    # The person fixes the name; the password inputs came back empty, the handles did not.
    data.update(kept, model_name="Model A", new_auth_token="", **{"headers-0-value": ""})
    response = client.post(reverse("integration-add"), {**data, "action": "draft"}, headers=HX)
    assert response.status_code == 200 and "HX-Redirect" in response
    assert AuthProfile.objects.get().token == CANARY
    assert IntegrationHeader.objects.get(name="X-Org-Secret").value == CANARY_HEADER


def test_a_handle_is_useless_to_anyone_else(bob, charlie):
    handle = held.hold(CANARY, bob, "add", "new_auth_token")
    assert held.take(handle, charlie, "add", "new_auth_token") == ""
    assert held.take(handle, bob, "add", "new_auth_token") == CANARY
    assert held.take("made-up", bob, "add", "new_auth_token") == ""


def test_save_and_disable_after_a_refused_change_saves_the_typed_key(
    client, bob, make_integration, upstream
):
    upstream.handler = reply_json({"error": {"message": "bad key"}}, status=401)
    model = make_integration()
    profile = model.integration.auth_profile
    client.force_login(bob)
    url = reverse("auth-profile-edit", args=[profile.pk])
    data = {"name": profile.name, "kind": "bearer", "token": "sk-other-key-00000000"}
    html = client.post(url, data).content.decode()
    assert "Save and disable the failing models" in html and "sk-other-key" not in html
    # The re-rendered page's button posts the page as it is: key field empty, handle kept.
    data.update(handles(html), token="", action="save_disable")
    assert client.post(url, data).status_code == 302
    profile.refresh_from_db()
    model.refresh_from_db()
    assert profile.token == "sk-other-key-00000000"
    assert not model.enabled


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_secret_header_survives_an_error_re_render_in_the_browser(page, upstream, bob):
    from tests.conftest import log_in
    from tests.integrations.test_browser_test_then_save import fill_add_form

    log_in(page, "bob", "pw-bob-123")
    page.wait_for_url("**/")
    fill_add_form(page, upstream)
    page.get_by_label("Model name").fill("")
    page.get_by_role("button", name="Save as draft").click()
    page.get_by_text("This field is required").first.wait_for()
    row = page.locator(".header-row").last
    assert row.get_by_label("Value").input_value() == ""  # nothing echoed into the page
    assert CANARY_HEADER not in page.content()
    page.get_by_label("Model name").fill("Acme Small")
    page.get_by_role("button", name="Save as draft").click()
    page.wait_for_url(re.compile(r"/integrations/[0-9a-f-]+/$"))
    assert IntegrationHeader.objects.get(name="X-Org-Secret").value == CANARY_HEADER
    assert AuthProfile.objects.get(name="Acme key").token == CANARY
