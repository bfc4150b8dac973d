"""In Chromium: add an integration with a bearer profile and a secret header, test, save,
find it, edit it, delete it; a 401 shows the hint and keeps Save disabled."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from integrations.models import CustomModel, Integration
from tests.conftest import CANARY, CANARY_HEADER, log_in
from tests.upstream import openai_reply, reply_json

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def fill_add_form(page, upstream):
    page.goto("/integrations/new")
    page.get_by_label("Integration name").fill("Acme LLM")
    page.get_by_label("Endpoint").fill(f"{upstream.url}/v1/chat/completions")
    expect(page.locator("#url-preview")).to_contain_text(f"POST {upstream.url}/v1/chat/completions")
    expect(page.locator("#url-preview")).to_contain_text("treated as the base URL")
    page.get_by_label("Auth", exact=True).select_option("new")
    page.get_by_label("Profile name").fill("Acme key")
    page.get_by_label("Type").select_option("bearer")
    page.get_by_label("API key / token").fill(CANARY)
    page.get_by_role("button", name="Add header").click()
    row = page.locator(".header-row").last
    row.get_by_label("Name").fill("X-Org-Secret")
    row.get_by_label("Secret").check()
    row.get_by_label("Value").fill(CANARY_HEADER)
    page.get_by_label("Model name").fill("Acme Small")
    page.get_by_label("Model ID").fill("acme-small")


def test_add_test_save_find_edit_delete(page, live_server, upstream, bob, artifacts):
    upstream.handler = reply_json(openai_reply("Hello from Acme"))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    log_in(page, "bob", "pw-bob-123")
    fill_add_form(page, upstream)
    save = page.get_by_role("button", name="Save", exact=True)
    expect(save).to_be_disabled()
    page.get_by_role("button", name="Test", exact=True).click()
    panel = page.locator("#result-panel")
    expect(panel).to_contain_text("Test passed")
    expect(panel).to_contain_text("Hello from Acme")
    for label, value in (
        ("Prompt tokens", "12"),
        ("Completion tokens", "3"),
        ("Total tokens", "15"),
    ):
        expect(
            panel.locator("dt", has_text=label).locator("xpath=following-sibling::dd")
        ).to_have_text(value)
    expect(page.locator(".request")).to_contain_text("Authorization: Bearer ••••")
    panel.screenshot(path=str(artifacts / "test-result-panel.png"))
    expect(save).to_be_enabled()
    assert CANARY not in page.content() and CANARY_HEADER not in page.content()

    # A field the upstream never sees keeps the test; one it sees disables Save until the
    # next test.
    page.get_by_label("Description", exact=True).fill("changed")
    page.get_by_label("Model name").fill("Acme Small v2")
    expect(save).to_be_enabled()
    page.get_by_label("Model ID").fill("acme-small-2")
    expect(save).to_be_disabled()
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("#result-panel")).to_contain_text("Test passed")
    expect(save).to_be_enabled()
    save.click()
    page.wait_for_url(re.compile(r"/integrations/[0-9a-f-]+/$"))
    expect(page.get_by_role("heading", name="Acme LLM")).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text(f"POST {upstream.url}/v1/chat/completions")
    assert upstream.requests[-1].headers["X-Org-Secret"] == CANARY_HEADER

    # Find it in the catalog.
    page.goto("/")
    page.get_by_role("searchbox").fill("acme")
    expect(page.locator("table.catalog")).to_contain_text("Acme Small v2")
    expect(page.locator("table.catalog")).to_contain_text("Passing")

    # Edit the integration: an unchanged configuration saves without a test, and says so.
    page.get_by_role("link", name="Acme LLM").click()
    page.get_by_role("link", name="Edit", exact=True).first.click()
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r"/integrations/[0-9a-f-]+/$"))
    expect(page.locator(".messages")).to_contain_text("Nothing changed")

    # Delete it, confirming.
    page.get_by_role("link", name="Delete", exact=True).first.click()
    expect(page.locator("main")).to_contain_text("Acme Small v2")
    page.get_by_role("button", name="Delete integration").click()
    page.wait_for_url(f"{live_server.url}/")
    assert not Integration.objects.filter(name="Acme LLM").exists()
    assert not CustomModel.objects.exists()
    # Pages load nothing from outside the console (htmx and CSS are shipped).
    assert requested and all(url.startswith(live_server.url) for url in requested), requested


def test_a_401_shows_the_hint_and_leaves_save_disabled(page, upstream, bob, artifacts):
    upstream.handler = reply_json({"error": {"message": "Incorrect API key provided"}}, status=401)
    log_in(page, "bob", "pw-bob-123")
    fill_add_form(page, upstream)
    page.get_by_role("button", name="Test", exact=True).click()
    panel = page.locator("#result-panel")
    expect(panel).to_contain_text("Test failed")
    expect(panel).to_contain_text("Incorrect API key provided")
    expect(panel).to_contain_text("Check the auth profile")
    expect(page.get_by_role("button", name="Save", exact=True)).to_be_disabled()
    page.screenshot(path=str(artifacts / "test-result-401.png"), full_page=True)
    assert not Integration.objects.exists()


def test_the_test_result_is_in_view_and_a_retest_shows_only_progress(page, upstream, bob):
    log_in(page, "bob", "pw-bob-123")
    fill_add_form(page, upstream)
    upstream.handler = reply_json(openai_reply("First answer"), delay=0.8)
    page.get_by_role("button", name="Test", exact=True).click()
    running = page.locator("#test-result .result.running")
    expect(running).to_contain_text("Testing…")
    expect(running.locator(".elapsed")).to_contain_text(" s")
    panel = page.locator("#result-panel")
    expect(panel).to_contain_text("First answer")
    expect(panel).to_be_in_viewport()
    # A re-test takes the old result away at once: only the spinner and the time show.
    upstream.handler = reply_json(openai_reply("Second answer"), delay=0.8)
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("#test-result")).not_to_contain_text("First answer")
    expect(page.locator("#test-result .spinner")).to_be_visible()
    expect(panel).to_contain_text("Second answer")
    expect(panel).to_be_in_viewport()


def test_a_slow_first_test_can_be_cancelled(page, upstream, bob):
    log_in(page, "bob", "pw-bob-123")
    fill_add_form(page, upstream)
    upstream.handler = reply_json(openai_reply("Too late"), delay=3)
    page.get_by_role("button", name="Test", exact=True).click()
    running = page.locator("#test-result .result.running")
    expect(running).to_contain_text("Testing…")
    running.get_by_role("button", name="Cancel the test").click()
    expect(page.locator("#test-result")).to_contain_text("Test cancelled")
    expect(page.get_by_role("button", name="Test", exact=True)).to_be_enabled()
    expect(page.get_by_role("button", name="Save", exact=True)).to_be_disabled()
    # Testing again works at once, without waiting for the cancelled call.
    upstream.handler = reply_json(openai_reply("Quick now"))
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("#result-panel")).to_contain_text("Quick now")
    expect(page.get_by_role("button", name="Save", exact=True)).to_be_enabled()
    assert not Integration.objects.exists()
    # The cancelled call ends on the server's side too before the database is reset.
    for _ in range(60):
        if all(r.finished for r in upstream.requests):
            break
        page.wait_for_timeout(100)
    page.wait_for_timeout(300)
