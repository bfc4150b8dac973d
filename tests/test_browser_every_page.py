"""Every page, as each role sees it, in Chromium: no horizontal overflow at phone width
(390 px), and axe-core finds no serious or critical violation, at phone and desktop width,
in light mode and (for the Admin, who sees every page) in dark mode. The Admin also checks
the Django admin's pages. The Swagger page (/api/docs) is a vendored third-party UI and
is not checked here.

axe-core comes from the axe-playwright-python package (its bundled axe.min.js); it is
evaluated through the DevTools protocol, so the page's CSP stays as strict as in use.
"""

from __future__ import annotations

from importlib import resources

import pytest
from django.urls import reverse

from sandbox.models import SandboxRun
from tests.conftest import log_in
from tests.test_access_matrix import PAGES, args_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = resources.files("axe_playwright_python").joinpath("axe.min.js").read_text()
# Partials (htmx fragments) and machine endpoints are not pages.
NOT_PAGES = {
    "healthz", "demo-models", "endpoint-preview", "fetch-models", "sandbox-column",
    "metrics", "favicon", "usage-csv", "dataset-export", "experiment-export", "gateway-models", "gateway-openapi", "gateway-model", "gateway-response",
}  # fmt: skip
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
PASSWORDS = {"admin": "pw-alice-123", "editor": "pw-bob-123", "member": "pw-charlie-123"}
NAMES = {"admin": "alice", "editor": "bob", "member": "charlie"}


def page_paths(o: dict, signed_in: bool) -> list[str]:
    paths = []
    for name, (method, _) in PAGES.items():
        if method != "get" or name in NOT_PAGES:
            continue
        if signed_in == name.startswith("password_reset") or (signed_in and name == "login"):
            continue
        paths.append(reverse(name, args=args_for(name, o)))
    return paths + (["/no-such-page/"] if signed_in else [])


def serious(page) -> list[str]:
    before = len(page.csp_violations)
    page.evaluate(AXE)
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '))"
    )
    # axe itself re-reads markup with style attributes on the admin's change pages, which
    # the CSP reports; those reports are the tool's, not the page's.
    page.wait_for_timeout(50)
    del page.csp_violations[before:]
    return found


def overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def check_pages(page, paths: list[str], widths, label: str) -> list[str]:
    problems = []
    for size in widths:
        page.set_viewport_size(size)
        for path in paths:
            page.goto(path)
            page.wait_for_load_state("networkidle")
            if size is PHONE and (extra := overflow(page)) > 0:
                problems.append(f"{label} {path} at 390 px: {extra} px wider than the screen")
            problems += [f"{label} {path} at {size['width']} px: {v}" for v in serious(page)]
    return problems


@pytest.fixture
def usage(objects):
    """A month of usage, so the usage page draws its charts and tables."""
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from integrations.gateway import metering
    from integrations.models import UsageRecord

    key, model = objects["gateway_key"], objects["model"]
    for day in range(30):
        for ok in (True, True, False):
            row = UsageRecord.objects.create(
                created_at=timezone.now() - timedelta(days=day),
                source="gateway",
                key=key,
                user=key.owner,
                model=model,
                model_name=model.name,
                prompt_tokens=100 + day,
                completion_tokens=40,
                cost=Decimal("0.0012"),
                latency_ms=200 + 40 * day,
                ok=ok,
            )
            metering.roll_up(row)


@pytest.fixture
def rich_run(objects, usage):
    """A reply with Markdown, a table and a long unbroken line: what stretches a page."""
    run = objects["run"]
    run.reply = "# Heading\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n`" + "x" * 300 + "`\n"
    run.usage_estimated = True
    run.prompt_tokens, run.completion_tokens = 3, 90
    run.save()
    SandboxRun.objects.filter(pk=run.pk).update(user_prompt="y" * 400)
    return run


@pytest.mark.parametrize("role", ["admin", "editor", "member"])
def test_every_page_fits_a_phone_and_passes_axe(page, objects, rich_run, role):
    log_in(page, NAMES[role], PASSWORDS[role])
    page.wait_for_url("**/")
    paths = page_paths(objects, signed_in=True)
    problems = check_pages(page, paths, (PHONE, DESKTOP), role)
    if role == "admin":
        model = objects["model"]
        admin_site = [
            "/admin/",
            "/admin/integrations/custommodel/",
            f"/admin/integrations/custommodel/{model.pk}/change/",
            f"/admin/integrations/integration/{model.integration.pk}/change/",
            "/admin/sandbox/sandboxrun/",
            "/admin/auth/user/",
        ]
        problems += check_pages(page, admin_site, (PHONE, DESKTOP), "Django admin")
        page.emulate_media(color_scheme="dark")
        problems += check_pages(page, paths, (DESKTOP,), "admin, dark mode")
    assert not problems, "\n".join(problems)


def test_the_signed_out_pages_fit_a_phone_and_pass_axe(page, objects):
    paths = page_paths(objects, signed_in=False)
    problems = check_pages(page, paths, (PHONE, DESKTOP), "signed out")
    page.emulate_media(color_scheme="dark")
    problems += check_pages(page, paths, (DESKTOP,), "signed out, dark mode")
    assert not problems, "\n".join(problems)


def test_the_nav_folds_behind_a_menu_on_a_phone(page, objects):
    log_in(page, "alice", "pw-alice-123")
    page.wait_for_url("**/")
    page.set_viewport_size(PHONE)
    page.goto("/")
    menu = page.get_by_role("button", name="Menu")
    nav = page.get_by_role("navigation", name="Main")
    assert menu.is_visible() and not nav.is_visible()
    menu.click()
    assert menu.get_attribute("aria-expanded") == "true"
    nav.locator("summary", has_text="Admin").click()
    for link in ("Users", "Audit", "Alerts", "Export", "Django admin"):
        assert nav.get_by_role("link", name=link).is_visible()
    box = nav.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.keyboard.press("Escape")
    assert not nav.is_visible()


def test_the_nav_is_one_line_at_1280_and_no_page_asks_for_a_missing_icon(page, objects):
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    log_in(page, "alice", "pw-alice-123")
    page.wait_for_url("**/")
    page.set_viewport_size(DESKTOP)
    for path in ("/", "/admin/"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    page.goto("/")
    links = page.get_by_role("navigation", name="Main").locator(":scope > a, :scope > details")
    tops = {round(box["y"]) for box in (el.bounding_box() for el in links.all()) if box}
    assert len(tops) == 1, f"the nav wraps onto {len(tops)} lines"
    assert not missing, missing
    page.locator("summary", has_text="Admin").click()
    page.get_by_role("link", name="Audit").click()
    page.wait_for_url("**/team/audit/")


def test_the_skip_link_and_focus_are_visible(page, objects):
    log_in(page, "alice", "pw-alice-123")
    page.wait_for_url("**/")
    page.goto("/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    assert skip.evaluate("el => el === document.activeElement")
    assert skip.bounding_box()["y"] >= 0  # moved on screen when focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")


def test_the_usage_page_draws_its_charts(page, objects, usage):
    log_in(page, "alice", "pw-alice-123")
    page.wait_for_url("**/")
    page.goto("/usage/")
    charts = page.locator("svg.chart")
    assert charts.count() == 6
    for chart in charts.all():
        box = chart.bounding_box()
        assert box["width"] > 200 and box["height"] > 100
    assert page.locator("svg.chart rect.bar").count() >= 30
    assert page.locator("svg.chart polyline").count() >= 2
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename.startswith("usage-")


def test_stacked_cells_carry_their_column_labels_on_a_phone(page, objects, usage):
    log_in(page, "alice", "pw-alice-123")
    page.wait_for_url("**/")
    page.set_viewport_size(PHONE)
    page.goto("/usage/")
    by_model = page.locator("section", has=page.get_by_role("heading", name="By model"))
    cells = by_model.locator("tbody td")
    labels = [cells.nth(i).get_attribute("data-label") for i in range(cells.count())]
    assert labels[:2] == ["Name", "Requests"], labels
    shown = cells.nth(1).evaluate("c => getComputedStyle(c, '::before').content")
    assert shown == '"Requests: "', shown


def test_an_audit_entry_for_a_create_says_what_was_set_in_words(page, alice, make_integration):
    from integrations import audit

    model = make_integration(name="Acme", name_suffix="Small")
    audit.record_created(None, model.integration)
    audit.record_created(None, model)
    log_in(page, "alice", "pw-alice-123")
    page.wait_for_url("**/")
    page.set_viewport_size(DESKTOP)
    page.goto("/team/audit/")
    created = page.locator("table.audit tbody tr", has_text="Model Small").first
    changes = created.locator("td").nth(4)
    assert "∅" not in changes.text_content() and "→" not in changes.text_content()
    assert "Acme" in changes.text_content()  # the integration by its name
    assert str(model.integration_id) not in page.content()
    expect_type = created.locator("td").nth(3).locator("small")
    assert expect_type.text_content() == "Custom model"
    integration = page.locator("table.audit tbody tr", has_text="Acme").last
    assert "proxy_url" not in integration.text_content()  # no proxy was set
    for column in (1, 5):  # Who and IP keep their words whole
        cell = created.locator("td").nth(column)
        assert page.evaluate("c => getComputedStyle(c).whiteSpace", cell.element_handle()) in (
            "nowrap",
            "pre",
        )
