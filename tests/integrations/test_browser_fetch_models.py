"""In Chromium: models fetched from the endpoint and added show in the Models table at
once, without a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import log_in
from tests.upstream import openai_reply, reply_json

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_added_models_appear_in_the_table_without_a_reload(page, make_integration, bob, upstream):
    def handler(rec, h):
        if rec.path.endswith("/models"):
            return reply_json({"data": [{"id": "test-model"}, {"id": "mock-claude"}]})(rec, h)
        return reply_json(openai_reply("hi"))(rec, h)

    upstream.handler = handler
    model = make_integration()
    log_in(page, "bob", "pw-bob-123")
    page.wait_for_url("**/")
    page.goto(f"/integrations/{model.integration.pk}/")
    table = page.locator("#model-table")
    expect(table).not_to_contain_text("mock-claude")
    page.get_by_role("button", name="Fetch models").click()
    page.get_by_label("mock-claude").check()
    page.get_by_role("button", name="Add and test the ticked models").click()
    expect(page.locator("#fetched-models")).to_contain_text("mock-claude added: its test passed.")
    expect(table).to_contain_text("mock-claude")
    assert page.url.endswith(f"/integrations/{model.integration.pk}/")
