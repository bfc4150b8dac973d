"""In Chromium: the Sandbox speaks tools. Define a tool (its schema checked in the form),
get a call, answer it, get the final reply; a response format's schema is checked too."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from sandbox.models import SandboxRun
from sandbox.tools import EXAMPLE_TOOLS
from tests.conftest import log_in
from tests.fake_models import openai_model
from tests.test_browser_every_page import DESKTOP, PHONE, overflow, serious

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "plain"])
def test_a_tool_is_called_answered_and_the_reply_comes(
    page, upstream, make_integration, charlie, artifacts, stream
):
    model = make_integration(secret_header=None)
    upstream.handler = openai_model
    log_in(page, "charlie", "pw-charlie-123")
    page.goto(f"/sandbox/?model={model.pk}")
    if not stream:
        page.get_by_label("Stream the reply").uncheck()
    page.get_by_label("User message").fill("What is the weather in Paris?")
    page.get_by_text("Tools and response format").click()
    page.get_by_label("Tools (JSON)").fill(EXAMPLE_TOOLS)
    page.get_by_role("button", name="Run").click()
    panel = page.locator(".tool-call-panel")
    expect(panel).to_contain_text("get_weather")
    expect(panel.locator("pre.arguments")).to_contain_text('"city": "Paris"')
    sent = upstream.requests[-1].json()
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        assert overflow(page) <= 0 and not serious(page), size
    page.screenshot(
        path=str(artifacts / f"sandbox-tool-call-{'stream' if stream else 'plain'}.png"),
        full_page=True,
    )
    page.get_by_label("Result of get_weather").fill("Sunny, 21 C")
    page.get_by_role("button", name="Send the results and continue").click()
    expect(page.locator(".run-result:not(.live) .markdown")).to_have_text(
        "The tools said: Sunny, 21 C"
    )
    messages = upstream.requests[-1].json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert messages[2] == {
        "role": "tool",
        "tool_call_id": messages[1]["tool_calls"][0]["id"],
        "content": "Sunny, 21 C",
    }
    run = SandboxRun.objects.order_by("-created_at").first()
    assert run.turns[-1]["role"] == "tool" and run.options["tools"][0]["name"] == "get_weather"


def test_a_bad_tool_schema_is_refused_next_to_the_field(page, upstream, make_integration, charlie):
    model = make_integration(secret_header=None)
    log_in(page, "charlie", "pw-charlie-123")
    page.goto(f"/sandbox/?model={model.pk}")
    page.get_by_label("User message").fill("Hi")
    page.get_by_text("Tools and response format").click()
    bad = [{"name": "f", "parameters": {"type": "objekt"}}]
    page.get_by_label("Tools (JSON)").fill(json.dumps(bad))
    page.get_by_label("Response format").select_option("json_schema")
    page.get_by_label("Response schema (JSON Schema)").fill("{not json")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#sandbox-form")).to_contain_text("is not a valid JSON Schema")
    expect(page.locator("#sandbox-form")).to_contain_text("The response schema is not valid JSON")
    assert upstream.requests == []
