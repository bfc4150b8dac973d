"""In a real browser: log in, land on the models catalog, see the demo models."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_logs_in_and_shows_the_catalog(page, live_server, settings, alice, artifacts):
    settings.DEMO_BASE_URL = f"{live_server.url}/demo/v1"
    call_command("bootstrap", "--no-demo")
    call_command("bootstrap")
    log_in(page, "alice", "pw-alice-123")
    page.wait_for_url(f"{live_server.url}/")
    assert page.get_by_role("heading", name="Models catalog").is_visible()
    assert page.get_by_role("cell", name="Demo small").is_visible()
    assert page.locator(".badge.never").first.is_visible()
    page.get_by_role("searchbox").fill("large")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**q=large**")
    assert page.get_by_role("cell", name="Demo large").is_visible()
    assert page.get_by_role("cell", name="Demo small").count() == 0
    page.screenshot(path=str(artifacts / "catalog.png"), full_page=True)


def test_a_wrong_password_shows_a_clear_message(page, alice):
    log_in(page, "alice", "wrong")
    assert page.get_by_role("alert").is_visible()
    assert "/login/" in page.url
