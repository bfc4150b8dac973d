"""In Chromium: the Sandbox's Embeddings tab compares two texts with an embeddings model,
at phone and desktop width, with axe; and the Add page tests and saves an embeddings model."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from integrations.models import CustomModel
from tests.conftest import CANARY, log_in
from tests.fake_models import openai_model
from tests.test_browser_every_page import DESKTOP, PHONE, overflow, serious

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_two_texts_are_compared(page, upstream, make_integration, charlie, artifacts):
    make_integration(secret_header=None, kind="embeddings")
    upstream.handler = openai_model
    log_in(page, "charlie", "pw-charlie-123")
    page.goto("/sandbox/embeddings")
    page.get_by_label("First text").fill("The cat sat on the mat.")
    page.get_by_label("Second text").fill("The cat sat on the mat.")
    page.get_by_role("button", name="Compare").click()
    result = page.locator("#embeddings-result")
    expect(result).to_contain_text("Cosine similarity 1.0000")
    expect(result).to_contain_text("8")  # dimensions
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        assert overflow(page) <= 0 and not serious(page), size
        page.screenshot(
            path=str(artifacts / f"sandbox-embeddings-{size['width']}.png"), full_page=True
        )
    page.get_by_label("Second text").fill("Quarterly revenue grew four percent.")
    page.get_by_role("button", name="Compare").click()
    expect(result).not_to_contain_text("Cosine similarity 1.0000")
    expect(result).to_contain_text("Cosine similarity")
    page.get_by_role("link", name="in History").click()
    expect(page.locator("body")).to_contain_text("Quarterly revenue")


def test_an_embeddings_model_is_tested_and_saved_on_the_add_page(page, upstream, bob, artifacts):
    upstream.handler = openai_model
    log_in(page, "bob", "pw-bob-123")
    page.goto("/integrations/new")
    page.get_by_label("Integration name").fill("Vectors")
    page.get_by_label("Endpoint").fill(f"{upstream.url}/v1")
    page.get_by_label("Auth", exact=True).select_option("new")
    page.get_by_label("Profile name").fill("Vectors key")
    page.get_by_label("Type").select_option("bearer")
    page.get_by_label("API key / token").fill(CANARY)
    page.get_by_label("Model name").fill("Embed small")
    page.get_by_label("Model ID").fill("embed-small")
    page.get_by_label("Kind").select_option("embeddings")
    expect(page.locator("#url-preview")).to_contain_text(f"POST {upstream.url}/v1/embeddings")
    page.get_by_role("button", name="Test", exact=True).click()
    panel = page.locator("#result-panel")
    expect(panel).to_contain_text("Test passed")
    expect(panel).to_contain_text("1 vector of 8 dimensions")
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        assert overflow(page) <= 0 and not serious(page), size
    page.screenshot(path=str(artifacts / "add-embeddings-model.png"), full_page=True)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("body")).to_contain_text("Embed small")
    model = CustomModel.objects.get()
    assert model.kind == "embeddings" and model.last_test_status == "passing"
    assert upstream.requests[-1].path == "/v1/embeddings"
