"""In Chromium: an OAuth2 integration is added from the Add page, against a local token
server. The cURL preview stood a NUL placeholder in for the access token, which the
request check refused, so no OAuth2 test could pass and no receipt could be issued."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from integrations.models import AuthProfile, CustomModel
from tests.conftest import CANARY, log_in
from tests.upstream import openai_reply, reply_json

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_oauth2_integration_is_tested_and_saved_from_the_add_page(page, upstream, bob):
    token = reply_json({"access_token": "at-local-0123456789", "expires_in": 3600})
    chat = reply_json(openai_reply("Hello over OAuth"))
    upstream.handler = lambda rec, h: (token if rec.path == "/token" else chat)(rec, h)
    log_in(page, "bob", "pw-bob-123")
    page.wait_for_url("**/")
    page.goto("/integrations/new")
    page.get_by_label("Integration name").fill("Acme OAuth")
    page.get_by_label("Endpoint").fill(f"{upstream.url}/v1")
    page.get_by_label("Auth", exact=True).select_option("new")
    page.get_by_label("Profile name").fill("Acme client")
    page.get_by_label("Type").select_option("oauth2")
    page.get_by_label("Token URL").fill(f"{upstream.url}/token")
    page.get_by_label("Client ID").fill("console")
    page.get_by_label("Client secret").fill(CANARY)
    page.get_by_label("Model name").fill("Acme Small")
    page.get_by_label("Model ID").fill("acme-small")
    page.get_by_role("button", name="Test", exact=True).click()
    panel = page.locator("#result-panel")
    expect(panel).to_contain_text("Test passed")
    expect(panel).to_contain_text("Hello over OAuth")
    expect(page.locator("#curl-command")).to_contain_text("${ACCESS_TOKEN}")
    assert CANARY not in page.content() and "at-local-0123456789" not in page.content()
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r"/integrations/[0-9a-f-]+/$"))
    profile = AuthProfile.objects.get(name="Acme client")
    assert profile.kind == "oauth2" and profile.client_secret == CANARY
    assert CustomModel.objects.get(name="Acme Small").last_test_status == "passing"
    sent = [r for r in upstream.requests if r.path.endswith("/chat/completions")]
    assert sent[-1].headers["Authorization"] == "Bearer at-local-0123456789"
