"""In Chromium: Try in Sandbox, run with a system and a user prompt, see the reply and the
three token counts; a streaming run shows partial text before it finishes."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from sandbox.models import SandboxRun
from tests.conftest import log_in
from tests.upstream import openai_reply, reply_json, reply_sse

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_try_in_sandbox_run_and_stream(page, upstream, make_integration, charlie, artifacts):
    model = make_integration()
    log_in(page, "charlie", "pw-charlie-123")
    page.get_by_role("link", name="Try in Sandbox").first.click()
    expect(page.locator("select[name=model]")).to_have_value(str(model.pk))

    upstream.handler = reply_json(openai_reply("Hello <b>friend</b>"))
    page.get_by_label("System prompt").fill("You are terse.")
    page.get_by_label("User message").fill("Greet me")
    page.get_by_label("Stream the reply").uncheck()
    page.get_by_role("button", name="Run").click()
    result = page.locator(".run-result").first
    expect(result.locator("pre.reply")).to_have_text("Hello <b>friend</b>")
    for label, value in (
        ("Prompt tokens", "12"),
        ("Completion tokens", "3"),
        ("Total tokens", "15"),
    ):
        expect(
            result.locator("dt", has_text=label).locator("xpath=following-sibling::dd")
        ).to_have_text(value)
    sent = upstream.requests[-1].json()
    assert sent["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Greet me"},
    ]

    # Streaming: words arrive one by one; partial text shows before the final panel.
    usage = {"prompt_tokens": 9, "completion_tokens": 20, "total_tokens": 29}
    upstream.handler = reply_sse([f"word{i} " for i in range(20)], delay=0.1, usage=usage)
    page.get_by_label("Stream the reply").check()
    page.get_by_label("User message").press("Control+Enter")
    live = page.locator(".run-result.live pre.reply")
    expect(live).to_contain_text("word0")
    partial = live.text_content()
    assert "word19" not in partial
    expect(page.locator(".run-result.live")).to_contain_text("first token after")
    final = page.locator(".run-result:not(.live)")
    expect(
        final.locator("dt", has_text="Total tokens").locator("xpath=following-sibling::dd")
    ).to_have_text("29")
    expect(final).to_contain_text("first token")
    expect(final.locator("pre.reply")).to_contain_text("word19")
    page.screenshot(path=str(artifacts / "sandbox-stream.png"), full_page=True)
    assert SandboxRun.objects.filter(streamed=True, status="ok").count() == 1


def test_stop_cancels_a_running_stream(page, upstream, make_integration, charlie):
    make_integration()
    upstream.handler = reply_sse([f"w{i} " for i in range(200)], delay=0.05)
    log_in(page, "charlie", "pw-charlie-123")
    page.goto("/sandbox/")
    page.locator("select[name=model]").select_option(label="Model A")
    page.get_by_label("User message").fill("long answer please")
    page.get_by_role("button", name="Run").click()
    expect(page.locator(".run-result.live pre.reply")).to_contain_text("w1")
    page.get_by_role("button", name="Stop").click()
    expect(page.locator(".run-result.live")).to_contain_text("stopped")
    expect(page.get_by_role("button", name="Run")).to_be_enabled()
    # The server notices the closed connection and records the run as stopped.
    for _ in range(50):
        run = SandboxRun.objects.first()
        if run and run.status == "stopped":
            break
        page.wait_for_timeout(100)
    assert run is not None and run.status == "stopped" and run.reply.startswith("w0")
