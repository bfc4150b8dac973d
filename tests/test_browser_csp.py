"""The Content-Security-Policy holds in a real browser: inline script does not run."""

from __future__ import annotations

import pytest

from tests.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_inline_script_is_refused_and_the_console_needs_none(page, bob):
    log_in(page, "bob", "pw-bob-123")
    page.wait_for_url("**/")
    header = page.request.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in header and "unsafe-inline" not in header
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
        " document.head.appendChild(s); }"
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.injected") is None
    assert any("inline script" in v for v in page.csp_violations), page.csp_violations
    page.csp_violations.clear()  # the one violation this test made on purpose


def test_the_admin_and_the_api_docs_run_under_the_policy(page, alice, make_integration):
    model = make_integration()
    log_in(page, "alice", "pw-alice-123")
    page.wait_for_url("**/")
    for path in (
        "/admin/",
        f"/admin/integrations/integration/{model.integration.pk}/change/",
        f"/admin/integrations/custommodel/{model.pk}/change/",
        "/auth-profiles/new",
        "/api/docs",
    ):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    assert page.locator(".swagger-ui").count() == 1
    assert page.csp_violations == []


def test_auth_profile_fields_follow_the_kind_without_inline_script(page, bob):
    log_in(page, "bob", "pw-bob-123")
    page.wait_for_url("**/")
    page.goto("/auth-profiles/new")
    page.get_by_label("Type").select_option("basic")
    assert page.get_by_label("Username").is_visible()
    assert not page.get_by_label("API key / token").is_visible()
    page.get_by_label("Type").select_option("bearer")
    assert page.get_by_label("API key / token").is_visible()
