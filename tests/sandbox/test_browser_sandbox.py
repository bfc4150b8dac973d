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


def test_stop_ends_the_stream_with_the_text_shown_and_its_figures(
    page, upstream, make_integration, charlie
):
    make_integration()
    upstream.handler = reply_sse([f"w{i} " for i in range(200)], delay=0.05)
    log_in(page, "charlie", "pw-charlie-123")
    page.goto("/sandbox/")
    page.locator("select[name=model]").select_option(label="Model A")
    page.get_by_label("User message").fill("long answer please")
    page.get_by_role("button", name="Run").click()
    live = page.locator(".run-result.live")
    expect(live.locator("pre.reply")).to_contain_text("w1")
    expect(live).to_contain_text("first token after")
    shown_ttft = live.get_by_role("status").text_content()
    live.get_by_role("button", name="Stop Model A").click()
    # The server ends the stream where the browser is, and sends the run's card.
    final = page.locator(".run-result:not(.live)")
    expect(final).to_contain_text("Stopped")
    expect(final).to_contain_text("ms")
    expect(final.get_by_role("link", name="open the run of Model A")).to_be_visible()
    expect(final).to_contain_text("Completion tokens")
    expect(page.get_by_role("button", name="Run")).to_be_enabled()
    run = SandboxRun.objects.get()
    assert run.status == "stopped"
    shown = final.locator("pre.reply").text_content()
    assert run.reply == shown and run.reply.startswith("w0 w1 ")
    assert "w199" not in shown
    # One first-token figure: the live one is the run's.
    assert f"first token after {run.ttft_ms} ms" in shown_ttft
    expect(final).to_contain_text(f"first token {run.ttft_ms} ms")


def test_one_stop_per_column_stops_only_its_column(page, upstream, make_integration, charlie):
    a = make_integration(name="Slow A")
    b = make_integration(name="Slow B", name_suffix="B")
    upstream.handler = reply_sse([f"t{i} " for i in range(30)], delay=0.05)
    log_in(page, "charlie", "pw-charlie-123")
    page.goto(f"/sandbox/?model={a.pk}")
    page.get_by_role("button", name="Add a model to compare").click()
    page.locator("select[name='c1-model']").select_option(str(b.pk))
    page.get_by_label("User message").fill("count")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#result-0 .run-result.live pre.reply")).to_contain_text("t1")
    page.get_by_role("button", name="Stop Model A").click()
    expect(page.locator("#result-0 .run-result:not(.live)")).to_contain_text("Stopped")
    expect(page.locator("#result-1 .run-result:not(.live)")).to_contain_text("OK", timeout=15_000)
    expect(page.locator("#result-1 pre.reply")).to_contain_text("t29")
    for _ in range(50):
        if SandboxRun.objects.exclude(status="running").count() == 2:
            break
        page.wait_for_timeout(100)
    assert sorted(SandboxRun.objects.values_list("status", flat=True)) == ["ok", "stopped"]
