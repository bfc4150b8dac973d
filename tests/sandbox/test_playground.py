"""The playground on the server: conversations, variables, columns, the model's fixed
body values, stopped runs, saved prompts and one History entry per compare."""

from __future__ import annotations

from django.db import connection
from django.urls import reverse

from integrations.llm.config import LLMConfig, Prompt
from integrations.llm.protocols import adapter_for
from sandbox.models import SandboxRun, SavedPrompt
from tests.sandbox.test_sandbox_views import HX, payload, sse_events
from tests.upstream import reply_json, reply_sse

FIXED_BODY = {
    "model": "{{model}}",
    "messages": "{{messages}}",
    "temperature": 0,
    "stop": ["END"],
    "max_tokens": "{{max_tokens}}",
}


def post(client, data: dict, lists: dict | None = None, url="sandbox-run-now", **kw):
    return client.post(reverse(url), dict(data) | (lists or {}), **kw)


def test_the_turns_and_the_new_message_are_sent_in_order(
    client, charlie, make_integration, upstream
):
    model = make_integration()
    client.force_login(charlie)
    turns = {"turn_role": ["user", "assistant"], "turn_content": ["Hi", "Hello!"]}
    post(client, payload(model, user_prompt="And now?"), turns, headers=HX)
    assert upstream.requests[-1].json()["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "And now?"},
    ]
    run = SandboxRun.objects.get()
    assert run.user_prompt == "And now?" and len(run.turns) == 3


def test_a_conversation_must_end_with_a_user_message(client, charlie, make_integration, upstream):
    model = make_integration()
    client.force_login(charlie)
    turns = {"turn_role": ["user", "assistant"], "turn_content": ["Hi", "Hello!"]}
    html = post(client, payload(model, user_prompt=""), turns, headers=HX).content.decode()
    assert "Write the user message to send." in html and upstream.requests == []


def test_an_empty_turn_is_explained_not_sent(client, charlie, make_integration, upstream):
    model = make_integration()
    client.force_login(charlie)
    turns = {"turn_role": ["user", "assistant"], "turn_content": ["Hi", "  "]}
    html = post(client, payload(model), turns, headers=HX).content.decode()
    assert "Message 2 is empty" in html and upstream.requests == []


def test_variables_are_filled_everywhere_and_a_missing_one_is_named(
    client, charlie, make_integration, upstream
):
    model = make_integration()
    client.force_login(charlie)
    data = payload(model, system_prompt="Tone: {{tone}}", user_prompt="Write about {{ topic }}")
    html = post(client, data | {"var-tone": "dry"}, headers=HX).content.decode()
    assert "Fill in the variables: {{topic}}." in html and upstream.requests == []
    assert 'id="run-errors"' in html.split("Fill in the variables")[0]  # shown above Run
    post(client, data | {"var-tone": "dry", "var-topic": "owls"}, headers=HX)
    assert upstream.requests[-1].json()["messages"] == [
        {"role": "system", "content": "Tone: dry"},
        {"role": "user", "content": "Write about owls"},
    ]


def test_a_value_fixed_in_the_request_body_is_sent_until_overridden(
    client, charlie, make_integration, upstream
):
    model = make_integration(request_template=FIXED_BODY)
    client.force_login(charlie)
    page = client.get(reverse("sandbox-column"), {"model": str(model.pk)}).content.decode()
    assert "Set by the model&#x27;s request body to 0" in page
    post(client, payload(model), headers=HX)
    sent = upstream.requests[-1].json()
    assert sent["temperature"] == 0 and sent["stop"] == ["END"] and sent["max_tokens"] == 20
    post(client, payload(model, temperature="0.8", stop="STOP\nHALT"), headers=HX)
    sent = upstream.requests[-1].json()
    assert sent["temperature"] == 0.8 and sent["stop"] == ["STOP", "HALT"]
    run = SandboxRun.objects.order_by("-created_at").first()
    assert run.parameters["overrides"] == ["stop", "temperature"]


def test_the_model_defaults_are_not_added_unseen(client, charlie, make_integration, upstream):
    # The page loads the defaults into the fields; a field left blank sends nothing.
    model = make_integration(temperature=0.3, max_tokens=99)
    client.force_login(charlie)
    page = client.get(reverse("sandbox-column"), {"model": str(model.pk)}).content.decode()
    assert 'value="0.3"' in page and 'value="99"' in page
    post(client, payload(model, max_tokens=""), headers=HX)
    sent = upstream.requests[-1].json()
    assert "temperature" not in sent and "max_tokens" not in sent


def test_columns_run_at_once_with_their_own_parameters(client, charlie, make_integration, upstream):
    a = make_integration(name="One")
    b = make_integration(name="Two", name_suffix="B")
    client.force_login(charlie)
    data = payload(a, temperature="0.1") | {"c1-model": str(b.pk), "c1-temperature": "0.9"}
    html = post(client, data, headers=HX).content.decode()
    # Each result is swapped into its own column, under that column's settings.
    assert 'id="result-0" data-result-slot hx-swap-oob' in html
    assert 'id="result-1" data-result-slot hx-swap-oob' in html
    temperatures = sorted(r.json()["temperature"] for r in upstream.requests)
    assert temperatures == [0.1, 0.9]
    runs = SandboxRun.objects.order_by("column")
    assert [r.column for r in runs] == [0, 1] and runs[0].compare_group == runs[1].compare_group


def test_more_than_four_columns_is_refused_above_run(client, charlie, make_integration, upstream):
    models = [make_integration(name=f"N{i}", name_suffix=i) for i in range(5)]
    client.force_login(charlie)
    data = payload(models[0]) | {f"c{i}-model": str(m.pk) for i, m in enumerate(models) if i}
    html = post(client, data, headers=HX).content.decode()
    assert "Compare at most 4 models at once." in html and upstream.requests == []


def test_a_compare_is_one_history_entry_found_by_any_of_its_models(
    client, bob, make_integration, upstream
):
    a = make_integration(name="One")
    b = make_integration(name="Two", name_suffix="Beta")
    client.force_login(bob)
    post(client, payload(a) | {"c1-model": str(b.pk)}, headers=HX)
    post(client, payload(a), headers=HX)
    html = client.get(reverse("sandbox-history")).content.decode()
    assert html.count("<tr>") == 1 + 2  # the header row, the compare, the single run
    assert "Compare: Model A, Model Beta" in html
    found = client.get(reverse("sandbox-history"), {"model": "Beta"}).content.decode()
    assert "Compare: Model A, Model Beta" in found and found.count("<tr>") == 2
    lead = SandboxRun.objects.get(column=0, compare_group__isnull=False)
    detail = client.get(reverse("sandbox-run", args=[lead.pk])).content.decode()
    assert "Compare of 2 models" in detail and detail.count('class="result run-result') == 2


def test_a_stopped_stream_keeps_its_latency_and_estimated_usage(
    client, charlie, make_integration, upstream, monkeypatch
):
    model = make_integration()
    upstream.handler = reply_sse([f"word{i} " for i in range(50)], delay=0.05)
    client.force_login(charlie)
    response = post(client, payload(model, stream="on"), url="sandbox-stream")
    chunks = iter(response.streaming_content)
    for _ in range(6):  # start and a few tokens
        next(chunks)
    # The browser's Stop closes the response; the test's connection holds the test
    # transaction, so it must survive the request's end (see test_sandbox_views).
    monkeypatch.setattr(connection, "close_if_unusable_or_obsolete", lambda: None)
    response.close()
    run = SandboxRun.objects.get()
    assert run.status == "stopped" and run.reply.startswith("word0")
    assert run.latency_ms >= 200 and run.ttft_ms is not None
    assert run.usage_estimated and run.completion_tokens >= 1 and run.prompt_tokens >= 1
    assert run.request["url"].endswith("/chat/completions")  # what was sent is kept


def test_a_streamed_run_without_usage_gets_a_labelled_cost_estimate(
    client, charlie, make_integration, upstream
):
    model = make_integration(price_input_per_mtok="1", price_output_per_mtok="2")
    upstream.handler = reply_sse(["some ", "words"])  # no usage chunk
    client.force_login(charlie)
    events = sse_events(post(client, payload(model, stream="on"), url="sandbox-stream"))
    done = dict(events)["done"]["html"]
    assert "Estimated cost (from estimated tokens)" in done
    run = SandboxRun.objects.get()
    assert run.usage_estimated and run.cost is not None


def test_the_api_does_not_present_estimates_as_reported_usage(
    client, charlie, make_integration, upstream, api_token
):
    upstream.handler = reply_json({"choices": [{"message": {"content": "hi"}}]})
    model = make_integration()
    response = client.post(
        "/api/v2/chat",
        {"model": str(model.pk), "user": "hi"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_token(charlie)}"},
    )
    assert response.json()["usage"]["reported"] is False
    assert response.json()["usage"]["prompt_tokens"] is None


def test_saved_prompts_are_private_unless_shared(client, users, make_integration):
    model = make_integration()
    member, editor, admin = users["member"], users["editor"], users["admin"]
    client.force_login(member)
    data = payload(model, user_prompt="About {{x}}") | {"prompt_name": "Mine", "var-x": "cats"}
    post(client, data, url="sandbox-prompt-save", headers=HX)
    post(client, data | {"prompt_name": "Ours", "prompt_shared": "on"}, url="sandbox-prompt-save")
    mine, ours = SavedPrompt.objects.get(name="Mine"), SavedPrompt.objects.get(name="Ours")
    assert mine.variables == {"x": "cats"} and mine.columns[0]["params"] == {"max_tokens": 20}
    client.force_login(editor)
    page = client.get(reverse("sandbox")).content.decode()
    assert "Ours" in page and "Mine" not in page
    assert (
        client.get(reverse("sandbox"), {"prompt": str(mine.pk)})
        .content.decode()
        .count("About {{x}}")
        == 0
    )  # another person's private prompt does not open
    client.post(reverse("sandbox-prompt-delete", args=[ours.pk]))
    assert SavedPrompt.objects.filter(pk=ours.pk).exists()  # not the editor's to delete
    client.force_login(admin)
    client.post(reverse("sandbox-prompt-delete", args=[ours.pk]))
    assert not SavedPrompt.objects.filter(pk=ours.pk).exists()  # an Admin tidies shared ones
    client.force_login(member)
    opened = client.get(reverse("sandbox"), {"prompt": str(mine.pk)}).content.decode()
    assert "About {{x}}" in opened and 'value="cats"' in opened


def test_saving_the_same_name_replaces_and_a_blank_name_is_explained(client, charlie):
    client.force_login(charlie)
    html = post(client, {"user_prompt": "x"}, url="sandbox-prompt-save", headers=HX)
    assert "Name the prompt to save it." in html.content.decode()
    for text in ("first", "second"):
        post(client, {"user_prompt": text, "prompt_name": "P"}, url="sandbox-prompt-save")
    assert SavedPrompt.objects.get(name="P").user_prompt == "second"


def test_anthropic_and_completions_protocols_carry_the_conversation():
    turns = (
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Again"},
    )
    prompt = Prompt.of(system="S", user="Again", turns=turns)
    config = LLMConfig(endpoint="http://h/v1", model_id="m")
    anthropic = adapter_for("anthropic-messages").write(config, prompt)
    assert anthropic["system"] == "S" and anthropic["messages"] == list(turns)
    legacy = adapter_for("openai-completions").write(config, prompt)
    assert legacy["prompt"] == "S\n\nUser: Hi\n\nAssistant: Hello\n\nUser: Again\n\nAssistant:"


def test_a_saved_prompt_keeps_only_parameters_the_column_accepts(client, charlie):
    client.force_login(charlie)
    data = {"user_prompt": "x", "prompt_name": "P", "model": "", "temperature": "9"}
    html = post(client, data, url="sandbox-prompt-save", headers=HX).content.decode()
    assert "Temperature: Ensure this value is less than or equal to 2" in html
    assert not SavedPrompt.objects.exists()
    post(client, data | {"temperature": "0.5", "stop": "A\nB"}, url="sandbox-prompt-save")
    assert SavedPrompt.objects.get().columns == [
        {"model": "", "params": {"temperature": 0.5, "stop": ["A", "B"]}}
    ]
