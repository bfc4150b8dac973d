"""In Chromium: the playground. A conversation with variables sends exactly the messages
shown; four columns stream at once; Markdown renders after a stream; picking a model
loads its parameters and says which ones its request body fixes."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from sandbox.models import SandboxRun, SavedPrompt
from tests.conftest import log_in
from tests.upstream import reply_sse

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _wait_for_runs(page, count: int) -> None:
    for _ in range(100):
        if SandboxRun.objects.exclude(status="running").count() >= count:
            return
        page.wait_for_timeout(50)


def test_a_multi_turn_conversation_sends_exactly_the_messages_shown(
    page, upstream, make_integration, charlie
):
    model = make_integration()
    upstream.handler = reply_sse(["Hello ", "Ada."])
    log_in(page, "charlie", "pw-charlie-123")
    page.goto(f"/sandbox/?model={model.pk}")
    page.get_by_label("System prompt").fill("You are terse.")
    page.get_by_label("User message").fill("Greet {{name}}")
    page.get_by_label("name", exact=True).fill("Ada")  # the variable appeared in the panel
    page.get_by_role("button", name="Run").click()
    expect(page.locator(".run-result:not(.live) .markdown")).to_have_text("Hello Ada.")
    assert upstream.requests[-1].json()["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Greet Ada"},
    ]

    # Continue from the reply: the sent message and the reply become turns.
    page.get_by_role("link", name="Continue from this reply").click()
    expect(page.get_by_label("Message 1", exact=True)).to_have_value("Greet {{name}}")
    expect(page.get_by_label("Message 2", exact=True)).to_have_value("Hello Ada.")
    expect(page.get_by_label("Role of message 2")).to_have_value("assistant")
    expect(page.get_by_label("User message")).to_have_value("")
    # Edit the assistant's turn, add a user turn and an assistant turn, delete the last.
    page.get_by_label("Message 2", exact=True).fill("Hello, Ada!")
    page.get_by_role("button", name="Add message").click()
    expect(page.get_by_label("Role of message 3")).to_have_value("user")
    page.get_by_label("Message 3", exact=True).fill("Who am I?")
    page.get_by_role("button", name="Add message").click()
    page.get_by_label("Message 4", exact=True).fill("to be deleted")
    page.get_by_role("button", name="Delete message 4").click()
    page.get_by_label("User message").fill("Say it again, {{name}}.")
    upstream.handler = reply_sse(["Again."])
    page.get_by_label("User message").press("Control+Enter")
    expect(page.locator(".run-result:not(.live) .markdown")).to_have_text("Again.")
    assert upstream.requests[-1].json()["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Greet Ada"},
        {"role": "assistant", "content": "Hello, Ada!"},
        {"role": "user", "content": "Who am I?"},
        {"role": "user", "content": "Say it again, Ada."},
    ]
    _wait_for_runs(page, 2)
    latest = SandboxRun.objects.order_by("-created_at").first()
    assert [t["role"] for t in latest.turns] == ["user", "assistant", "user", "user"]

    # Save it, shared, then open it again: the conversation and variables come back.
    page.get_by_text("Save this prompt").click()
    page.get_by_label("Name", exact=True).fill("Greeter")
    page.get_by_label("Share with the team").check()
    page.get_by_role("button", name="Save prompt").click()
    expect(page.locator("#saved-prompts")).to_contain_text("Saved “Greeter”, shared with the team")
    saved = SavedPrompt.objects.get(name="Greeter")
    assert saved.shared and saved.variables == {"name": "Ada"}
    page.get_by_role("button", name="Clear conversation").click()
    expect(page.locator("#turns [data-turn]")).to_have_count(0)
    page.get_by_role("link", name="Greeter", exact=True).click()
    expect(page.get_by_label("Message 2", exact=True)).to_have_value("Hello, Ada!")
    expect(page.get_by_label("name", exact=True)).to_have_value("Ada")
    expect(page.locator("select[name=model]")).to_have_value(str(model.pk))


def test_four_columns_stream_at_once_each_with_its_own_parameters(
    page, upstream, make_integration, charlie
):
    models = [make_integration(name=f"Local {i}", name_suffix=i) for i in range(4)]
    upstream.handler = reply_sse([f"w{i} " for i in range(8)], delay=0.1)
    log_in(page, "charlie", "pw-charlie-123")
    page.goto(f"/sandbox/?model={models[0].pk}")
    for i in range(1, 4):
        page.get_by_role("button", name="Add a model to compare").click()
        picker = page.locator(f"select[name='c{i}-model']")
        with page.expect_response(lambda r: "/sandbox/column" in r.url and "model" in r.url):
            picker.select_option(str(models[i].pk))  # loads the model's parameters
        page.wait_for_timeout(100)  # htmx swaps them in just after the response
        page.locator(f"#column-{i} .column-settings summary").click()  # folded by default
        page.locator(f"#column-params-{i} input[name='c{i}-temperature']").fill(f"0.{i}")
    expect(page.get_by_role("button", name="Add a model to compare")).to_be_hidden()
    page.get_by_label("User message").fill("Count")
    page.get_by_role("button", name="Run").click()
    expect(page.locator(".columns.cols-4 .column .result-slot")).to_have_count(4)
    expect(page.locator(".run-result:not(.live)")).to_have_count(4, timeout=15_000)
    columns = page.locator(".run-result:not(.live) header strong")
    expect(columns).to_have_text([m.name for m in models])
    for slot in page.locator(".run-result:not(.live)").all():
        expect(slot).to_contain_text("first token")
    # The four upstream calls overlapped: every one started before any finished.
    calls = upstream.requests[-4:]
    assert max(c.started for c in calls) < min(c.finished for c in calls)
    sent = sorted((c.json().get("temperature") or 0) for c in calls)
    assert sent == [0, 0.1, 0.2, 0.3]  # column 1 sends none: its model has no default
    # History shows the compare once, naming its four models.
    _wait_for_runs(page, 4)
    page.goto("/sandbox/history/")
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Compare: " + ", ".join(m.name for m in models))


def test_markdown_renders_after_a_stream_with_a_raw_toggle(
    page, upstream, make_integration, charlie
):
    model = make_integration()
    upstream.handler = reply_sse(["# Title\n\n", "Some **bo", "ld** text and `code`."], delay=0.05)
    log_in(page, "charlie", "pw-charlie-123")
    page.goto(f"/sandbox/?model={model.pk}")
    page.get_by_label("User message").fill("Format something")
    page.get_by_role("button", name="Run").click()
    final = page.locator(".run-result:not(.live)")
    expect(final.locator(".markdown h1")).to_have_text("Title")
    expect(final.locator(".markdown strong")).to_have_text("bold")
    expect(final.locator(".markdown code")).to_have_text("code")
    expect(final.locator("pre.reply")).to_be_hidden()
    final.get_by_role("button", name="Raw").click()
    expect(final.locator("pre.reply")).to_be_visible()
    expect(final.locator("pre.reply")).to_contain_text("Some **bold** text")
    expect(final.locator(".markdown")).to_be_hidden()


def test_picking_a_model_loads_its_parameters_and_its_fixed_body_values(
    page, upstream, make_integration, charlie
):
    make_integration(name="Plain", name_suffix="Plain", max_tokens=77, temperature=0.4)
    fixed = make_integration(
        name="Fixed",
        name_suffix="F",
        request_template={
            "model": "{{model}}",
            "messages": "{{messages}}",
            "temperature": 0,
            "stop": ["END"],
            "max_tokens": "{{max_tokens}}",
        },
        max_tokens=55,
    )
    upstream.handler = reply_sse(["ok"])
    log_in(page, "charlie", "pw-charlie-123")
    page.goto("/sandbox/")
    page.locator("select[name=model]").select_option(label="Model Plain")
    expect(page.get_by_label("Max tokens")).to_have_value("77")
    expect(page.get_by_label("Temperature")).to_have_value("0.4")
    page.locator("select[name=model]").select_option(str(fixed.pk))
    expect(page.get_by_label("Max tokens")).to_have_value("55")
    expect(page.get_by_label("Temperature")).to_have_value("")
    expect(page.locator("#column-params-0")).to_contain_text("Set by the model's request body to 0")
    expect(page.locator("#column-params-0")).to_contain_text(
        "Set by the model's request body to 'END'"
    )
    page.get_by_label("User message").fill("hi")
    page.get_by_role("button", name="Run").click()
    expect(page.locator(".run-result:not(.live)")).to_have_count(1)
    body = upstream.requests[-1].json()
    assert body["temperature"] == 0 and body["stop"] == ["END"] and body["max_tokens"] == 55
    # Overriding explicitly: what the field shows is what is sent.
    settings = page.locator("#column-0 .column-settings summary")
    expect(settings).to_contain_text("max tokens 55")  # folded, it says what it holds
    settings.click()
    page.get_by_label("Temperature").fill("0.9")
    page.get_by_role("button", name="Run").click()
    expect(page.locator(".run-result:not(.live) .markdown")).to_have_text("ok")
    page.wait_for_timeout(200)
    body = upstream.requests[-1].json()
    assert body["temperature"] == 0.9 and body["stop"] == ["END"]


def test_compared_results_sit_in_their_columns_and_a_run_reopens_with_its_variables(
    page, upstream, make_integration, charlie
):
    models = [make_integration(name=f"Local {i}", name_suffix=i) for i in range(3)]
    upstream.handler = reply_sse(["Hi ", "Ada."])
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, "charlie", "pw-charlie-123")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"/sandbox/?model={models[0].pk}")
    for i in range(1, 3):
        page.get_by_role("button", name="Add a model to compare").click()
        page.locator(f"select[name='c{i}-model']").select_option(str(models[i].pk))
    expect(page.get_by_role("button", name="Run")).to_be_in_viewport()  # three models, in view
    page.get_by_label("User message").fill("Greet {{name}}")
    page.get_by_label("name", exact=True).fill("Ada")
    page.get_by_role("button", name="Run").click()
    for i in range(3):  # each result under its own column's settings
        card = page.locator(f"#column-{i} #result-{i} .run-result:not(.live)")
        expect(card.locator("header strong")).to_have_text(f"Model {i}", timeout=15_000)
    expect(page.get_by_role("button", name="Run")).to_be_in_viewport()
    _wait_for_runs(page, 3)
    run = SandboxRun.objects.get(column=0)
    assert run.user_prompt == "Greet Ada" and run.template["variables"] == {"name": "Ada"}

    # From the run's own page, Continue opens the Sandbox with the reply as a turn.
    page.goto(f"/sandbox/runs/{run.pk}/")
    page.get_by_role("link", name="Continue from this reply").first.click()
    expect(page.get_by_label("Message 1", exact=True)).to_have_value("Greet {{name}}")
    expect(page.get_by_label("Message 2", exact=True)).to_have_value("Hi Ada.")
    expect(page.get_by_label("name", exact=True)).to_have_value("Ada")
    expect(page.get_by_label("User message")).to_have_value("")
    # Reopened from History: the message keeps its {{variable}} and the variable its value.
    page.goto(f"/sandbox/?run={run.pk}")
    expect(page.get_by_label("User message")).to_have_value("Greet {{name}}")
    expect(page.get_by_label("name", exact=True)).to_have_value("Ada")
    expect(page.locator("select[name='c2-model']")).to_have_value(str(models[2].pk))
    assert errors == []
