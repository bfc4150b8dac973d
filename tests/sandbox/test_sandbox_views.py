"""The Sandbox pages: run, stream, compare, history, rerun, for each role."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connection
from django.urls import reverse

from integrations.models import CustomModel
from sandbox.models import SandboxRun
from tests.upstream import openai_reply, reply_json, reply_sse

HX = {"HX-Request": "true"}


def payload(model: CustomModel, **extra) -> dict:
    data = {
        "model": str(model.pk),
        "system_prompt": "Be brief.",
        "user_prompt": "Say hi",
        "max_tokens": "20",
    }
    data.update(extra)
    return data


def sse_events(response) -> list[tuple[str, dict]]:
    text = b"".join(response.streaming_content).decode()
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.mark.parametrize("role", ["admin", "editor", "member"])
def test_every_role_may_use_the_sandbox(client, users, make_integration, upstream, role):
    model = make_integration()
    client.force_login(users[role])
    assert client.get(reverse("sandbox")).status_code == 200
    response = client.post(reverse("sandbox-run-now"), payload(model), headers=HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "pong" in html
    for label in ("Prompt tokens", "Completion tokens", "Total tokens"):
        assert label in html
    run = SandboxRun.objects.get()
    assert run.user == users[role] and run.status == "ok" and run.total_tokens == 15
    assert run.system_prompt == "Be brief." and run.parameters == {"max_tokens": 20}


def test_anonymous_users_reach_no_sandbox_page(client, make_integration):
    model = make_integration()
    for url in (reverse("sandbox"), reverse("sandbox-history")):
        assert client.get(url).status_code == 302
    for url in (reverse("sandbox-run-now"), reverse("sandbox-stream")):
        response = client.post(url, payload(model))
        assert response.status_code == 302 and "/login/" in response["Location"]
    assert not SandboxRun.objects.exists()


def test_a_plain_post_renders_the_whole_page_with_the_result(client, charlie, make_integration):
    model = make_integration()
    client.force_login(charlie)
    response = client.post(reverse("sandbox-run-now"), payload(model))
    assert (
        response.status_code == 200
        and "<html" in response.content.decode()
        and "pong" in response.content.decode()
    )


def test_the_model_is_preselected_from_try_in_sandbox(client, charlie, make_integration):
    model = make_integration(max_tokens=77)
    client.force_login(charlie)
    html = client.get(reverse("sandbox"), {"model": str(model.pk)}).content.decode()
    assert f'<option value="{model.pk}" selected>' in html
    assert 'value="77"' in html


def test_a_reply_with_html_is_shown_as_text_and_markdown_is_sanitized(
    client, charlie, make_integration, upstream
):
    upstream.handler = reply_json(
        openai_reply('**bold** <script>alert(1)</script><img src=x onerror="alert(2)">')
    )
    model = make_integration()
    client.force_login(charlie)
    html = client.post(reverse("sandbox-run-now"), payload(model), headers=HX).content.decode()
    assert "<script>alert(1)" not in html and "<img" not in html
    assert "&lt;script&gt;" in html  # the Raw view: the text as sent
    assert "<strong>bold</strong>" in html  # the Markdown view, shown by default, sanitized
    assert 'onerror="' not in html


def test_usage_not_reported_is_never_presented_as_reported(
    client, charlie, make_integration, upstream
):
    upstream.handler = reply_json(openai_reply("four words in reply", usage=False))
    model = make_integration()
    client.force_login(charlie)
    html = client.post(reverse("sandbox-run-now"), payload(model), headers=HX).content.decode()
    assert "not reported by the endpoint" in html and "estimate" in html
    assert "<dd>~" in html  # every count is marked as estimated
    assert "Total tokens" not in html
    run = SandboxRun.objects.get()
    assert run.usage_estimated and run.completion_tokens == 5  # 19 characters / 4


def test_cost_is_estimated_from_the_model_prices(client, charlie, make_integration):
    model = make_integration(price_input_per_mtok="2", price_output_per_mtok="10")
    client.force_login(charlie)
    html = client.post(reverse("sandbox-run-now"), payload(model), headers=HX).content.decode()
    # 12 prompt tokens at $2/M + 3 completion tokens at $10/M
    assert "$0.000054" in html
    assert str(SandboxRun.objects.get().cost).startswith("0.000054")


def test_an_endpoint_error_is_recorded_as_failed_with_its_hint(
    client, charlie, make_integration, upstream
):
    upstream.handler = reply_json({"error": {"message": "quota exceeded"}}, status=429)
    model = make_integration()
    client.force_login(charlie)
    response = client.post(reverse("sandbox-run-now"), payload(model), headers=HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Rate limited" in html and "quota exceeded" in html and "Wait and retry" in html
    run = SandboxRun.objects.get()
    assert run.status == "failed" and run.error_kind == "rate_limited"


def test_a_disabled_model_cannot_be_run(client, charlie, make_integration, upstream):
    model = make_integration(enabled=False)
    client.force_login(charlie)
    html = client.post(reverse("sandbox-run-now"), payload(model), headers=HX).content.decode()
    assert "That model is not available" in html
    assert upstream.requests == [] and not SandboxRun.objects.exists()


def test_a_missing_user_prompt_is_explained(client, charlie, make_integration):
    model = make_integration()
    client.force_login(charlie)
    html = client.post(
        reverse("sandbox-run-now"), payload(model, user_prompt=""), headers=HX
    ).content.decode()
    assert "Write the user message to send." in html


def test_runs_are_rate_limited_per_user(client, charlie, make_integration, settings):
    settings.SANDBOX_RATE_LIMIT = (2, 60)
    model = make_integration()
    client.force_login(charlie)
    for _ in range(2):
        client.post(reverse("sandbox-run-now"), payload(model), headers=HX)
    response = client.post(reverse("sandbox-run-now"), payload(model), headers=HX)
    assert "Too many runs: try again in" in response.content.decode()
    # The form comes back in place of itself, not as a second copy inside the results.
    assert response["HX-Retarget"] == "#sandbox-form" and response["HX-Reswap"] == "outerHTML"
    assert SandboxRun.objects.count() == 2


# --- streaming ---------------------------------------------------------------------------------


def test_streaming_sends_tokens_then_the_final_panel(client, charlie, make_integration, upstream):
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    upstream.handler = reply_sse(["Hi", " <b>there</b>"], usage=usage)
    model = make_integration()
    client.force_login(charlie)
    response = client.post(reverse("sandbox-stream"), payload(model, stream="on"))
    assert response["Content-Type"] == "text/event-stream"
    events = sse_events(response)
    names = [e for e, _ in events]
    assert names[0] == "start" and names[-1] == "done" and set(names[1:-1]) == {"token"}
    # The scrubber may hold back a character that could begin a secret; the text is whole.
    assert "".join(data["t"] for e, data in events if e == "token") == "Hi <b>there</b>"
    done = events[-1][1]["html"]
    assert "&lt;b&gt;there&lt;/b&gt;" in done and "Total tokens" in done and "first token" in done
    run = SandboxRun.objects.get()
    assert (
        run.streamed
        and run.reply == "Hi <b>there</b>"
        and run.total_tokens == 7
        and run.ttft_ms is not None
    )


def test_a_broken_stream_is_recorded_as_failed_with_partial_text(
    client, charlie, make_integration, upstream
):
    upstream.handler = reply_sse(["one ", "two ", "three"], break_after=2)
    model = make_integration()
    client.force_login(charlie)
    events = sse_events(client.post(reverse("sandbox-stream"), payload(model, stream="on")))
    assert events[-1][0] == "done"
    run = SandboxRun.objects.get()
    assert run.status == "failed" and run.reply == "one two "
    assert "Partial reply" in events[-1][1]["html"]


def test_stopping_a_stream_closes_the_upstream_and_keeps_the_partial_text(
    client, charlie, make_integration, upstream, monkeypatch
):
    upstream.handler = reply_sse([f"w{i} " for i in range(100)], delay=0.05)
    model = make_integration()
    client.force_login(charlie)
    response = client.post(reverse("sandbox-stream"), payload(model, stream="on"))
    chunks = iter(response.streaming_content)
    seen = b""
    while b"event: token" not in seen:
        seen += next(chunks)
    # What the server does when the browser aborts: it closes the response, which ends the
    # request and lets Django recycle database connections. The test's connection holds
    # the test transaction, so it must survive that.
    with monkeypatch.context() as patch:
        patch.setattr(connection, "close_if_unusable_or_obsolete", lambda: None)
        response.close()
    run = SandboxRun.objects.get()
    assert run.status == "stopped" and run.reply.startswith("w0")
    time.sleep(0.3)
    assert upstream.requests[0].finished  # the upstream saw the connection close


def test_a_stream_refused_by_the_rate_limit_says_so(client, charlie, make_integration, settings):
    settings.SANDBOX_RATE_LIMIT = (0, 60)
    model = make_integration()
    client.force_login(charlie)
    events = sse_events(client.post(reverse("sandbox-stream"), payload(model, stream="on")))
    assert events[0][0] == "refused" and "try again in" in events[0][1]["message"]


# --- compare ----------------------------------------------------------------------------------


def test_compare_runs_models_concurrently_and_shows_each(
    client, charlie, make_integration, upstream
):
    lock = threading.Lock()
    active = {"now": 0, "max": 0}

    def slow(rec, h):
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        time.sleep(1)
        with lock:
            active["now"] -= 1
        model_id = rec.json()["model"]
        if model_id == "broken":
            reply_json({"error": "boom"}, status=500)(rec, h)
        else:
            reply_json(openai_reply(f"answer from {model_id}"))(rec, h)

    upstream.handler = slow
    first = make_integration()
    others = [
        CustomModel.objects.create(integration=first.integration, name=f"M{i}", model_id=mid)
        for i, mid in enumerate(["m-two", "m-three", "broken"])
    ]
    client.force_login(charlie)
    data = payload(first)
    response = client.post(
        reverse("sandbox-run-now"), {**data, "compare": [str(m.pk) for m in others]}, headers=HX
    )
    html = response.content.decode()
    # All four requests overlapped at the upstream: they ran at once, not one after another.
    assert active["max"] == 4
    intervals = sorted((r.started, r.finished) for r in upstream.requests)
    assert all(start < intervals[0][1] for start, _ in intervals)
    for text in (
        "answer from test-model",
        "answer from m-two",
        "answer from m-three",
        "Server error",
    ):
        assert text in html
    runs = SandboxRun.objects.all()
    assert runs.count() == 4 and len({r.compare_group for r in runs}) == 1
    assert runs.filter(status="failed").count() == 1


def test_compare_refuses_more_than_four_models(client, charlie, make_integration):
    first = make_integration()
    others = [
        CustomModel.objects.create(integration=first.integration, name=f"M{i}", model_id=f"m{i}")
        for i in range(4)
    ]
    client.force_login(charlie)
    response = client.post(
        reverse("sandbox-run-now"),
        {**payload(first), "compare": [str(m.pk) for m in others]},
        headers=HX,
    )
    assert "at most 4" in response.content.decode() and not SandboxRun.objects.exists()
    assert response["HX-Retarget"] == "#sandbox-form"


# --- history and rerun ----------------------------------------------------------------------


def test_members_see_their_own_history_editors_see_all(client, users, make_integration):
    model = make_integration()
    for role in ("member", "editor"):
        client.force_login(users[role])
        client.post(
            reverse("sandbox-run-now"), payload(model, user_prompt=f"prompt of {role}"), headers=HX
        )
    client.force_login(users["member"])
    html = client.get(reverse("sandbox-history")).content.decode()
    assert "prompt of member" in html and "prompt of editor" not in html
    editor_run = SandboxRun.objects.get(user=users["editor"])
    assert client.get(reverse("sandbox-run", args=[editor_run.pk])).status_code == 404
    client.force_login(users["editor"])
    html = client.get(reverse("sandbox-history")).content.decode()
    assert "prompt of member" in html and "prompt of editor" in html
    html = client.get(reverse("sandbox-history"), {"user": "charlie"}).content.decode()
    assert "prompt of member" in html and "prompt of editor" not in html


def test_history_truncates_long_prompts_and_the_run_page_shows_them_whole(
    client, charlie, make_integration
):
    model = make_integration()
    client.force_login(charlie)
    long_prompt = "word " * 2000
    client.post(reverse("sandbox-run-now"), payload(model, user_prompt=long_prompt), headers=HX)
    run = SandboxRun.objects.get()
    assert run.user_prompt == long_prompt.strip() or run.user_prompt == long_prompt
    assert long_prompt.strip() not in client.get(reverse("sandbox-history")).content.decode()
    assert long_prompt.strip() in client.get(reverse("sandbox-run", args=[run.pk])).content.decode()


def test_run_again_and_open_in_sandbox(client, charlie, make_integration, upstream):
    model = make_integration()
    client.force_login(charlie)
    client.post(reverse("sandbox-run-now"), payload(model, temperature="0.3"), headers=HX)
    first = SandboxRun.objects.get()
    response = client.post(reverse("sandbox-rerun", args=[first.pk]))
    assert response.status_code == 302
    second = SandboxRun.objects.exclude(pk=first.pk).get()
    assert second.user_prompt == first.user_prompt and second.parameters == first.parameters
    assert upstream.requests[1].json()["temperature"] == 0.3
    html = client.get(reverse("sandbox"), {"run": str(first.pk)}).content.decode()
    assert "Be brief." in html and "Say hi" in html and 'value="0.3"' in html


def test_a_run_uses_a_couple_of_queries(
    client, charlie, make_integration, django_assert_max_num_queries
):
    model = make_integration()
    client.force_login(charlie)
    client.get(reverse("sandbox"))  # warm the session and user
    # 10 for the run; after the response, its usage row and the day's totals (the day's
    # first run inserts the totals row: one more, in a savepoint).
    with django_assert_max_num_queries(10 + 4):
        client.post(reverse("sandbox-run-now"), payload(model), headers=HX)


def test_a_stop_reaches_only_the_stream_of_the_person_who_sent_it(client, charlie, bob):
    from sandbox import stops

    client.force_login(charlie)
    answer = client.post(reverse("sandbox-stop"), {"stream": ["s-1"]})
    assert answer.json() == {"stopping": 1}
    mine, theirs = stops.Watch(charlie.pk, "s-1"), stops.Watch(bob.pk, "s-1")
    mine.checked = theirs.checked = 0  # past the read interval
    assert mine.stopped() and not theirs.stopped()
    assert not stops.Watch(charlie.pk, "").stopped()
