"""Test then Save in the browser's forms: add, edit, receipts, roles."""

from __future__ import annotations

import json
import re
import time

import pytest
from django.core import signing
from django.urls import reverse

from integrations.models import (
    AuthProfile,
    ConnectionTest,
    CustomModel,
    Integration,
    IntegrationHeader,
)
from tests.conftest import CANARY, CANARY_HEADER
from tests.upstream import openai_reply, reply_json

HX = {"HX-Request": "true"}


def add_payload(upstream, **overrides) -> dict:
    data = {
        "integration_name": "Acme",
        "description": "",
        "preset": "",
        "endpoint": f"{upstream.url}/v1",
        "protocol": "openai-chat",
        "timeout_seconds": "5",
        "verify_tls": "on",
        "auth_profile": "new",
        "new_auth_name": "Acme key",
        "new_auth_kind": "bearer",
        "new_auth_token": CANARY,
        "headers-TOTAL_FORMS": "2",
        "headers-INITIAL_FORMS": "0",
        "headers-0-name": "X-Org-Secret",
        "headers-0-value": CANARY_HEADER,
        "headers-0-secret": "on",
        "headers-1-name": "X-Team",
        "headers-1-value": "research",
        "model_name": "Model A",
        "model_id": "test-model",
        "test_max_tokens": "16",
        "request_template": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def receipt_in(response) -> str:
    match = re.search(r'name="test_receipt" value="([^"]+)"', response.content.decode())
    return match.group(1) if match else ""


def passing_receipt(client, url, data) -> str:
    response = client.post(url, {**data, "action": "test"}, headers=HX)
    assert response.status_code == 200
    receipt = receipt_in(response)
    assert receipt, response.content.decode()[:2000]
    return receipt


@pytest.fixture
def editor_client(client, bob):
    client.force_login(bob)
    return client


# --- access --------------------------------------------------------------------------


def page_urls(model: CustomModel) -> dict[str, str]:
    integration = model.integration
    return {
        "catalog": reverse("home"),
        "detail": reverse("integration-detail", args=[integration.pk]),
        "profiles": reverse("auth-profiles"),
        "add": reverse("integration-add"),
        "edit": reverse("integration-edit", args=[integration.pk]),
        "model-add": reverse("model-add", args=[integration.pk]),
        "model-edit": reverse("model-edit", args=[model.pk]),
        "delete": reverse("integration-delete", args=[integration.pk]),
        "model-delete": reverse("model-delete", args=[model.pk]),
        "profile-add": reverse("auth-profile-add"),
        "profile-edit": reverse("auth-profile-edit", args=[integration.auth_profile_id]),
        "profile-delete": reverse("auth-profile-delete", args=[integration.auth_profile_id]),
        "preview": reverse("endpoint-preview") + "?endpoint=https://x.io/v1",
        "fetch": reverse("fetch-models", args=[integration.pk]),
    }


READ_PAGES = {"catalog", "detail", "profiles"}


@pytest.mark.parametrize("role", ["admin", "editor", "member", "anonymous"])
def test_every_page_enforces_the_role(client, users, make_integration, role):
    model = make_integration()
    if role != "anonymous":
        client.force_login(users[role])
    for name, url in page_urls(model).items():
        response = client.get(url)
        if role == "anonymous":
            assert response.status_code == 302 and "/login/" in response["Location"], name
        elif role == "member" and name not in READ_PAGES:
            assert response.status_code == 403, name
        else:
            assert response.status_code == 200, (name, response.status_code)


@pytest.mark.parametrize("action", ["model-test", "model-toggle"])
def test_a_member_cannot_test_or_toggle(client, charlie, make_integration, upstream, action):
    model = make_integration()
    client.force_login(charlie)
    assert client.post(reverse(action, args=[model.pk])).status_code == 403
    assert client.post(reverse("model-delete", args=[model.pk])).status_code == 403
    assert upstream.requests == []
    assert CustomModel.objects.get(pk=model.pk).enabled


def test_a_member_sees_details_with_secrets_masked(client, charlie, make_integration):
    model = make_integration()
    client.force_login(charlie)
    html = client.get(reverse("integration-detail", args=[model.integration.pk])).content.decode()
    assert "X-Org-Secret" in html and "••••" in html
    assert (
        "Edit" not in html.split('<main id="main" tabindex="-1">')[1].split("Models")[0]
    )  # no edit actions for members


# --- Test then Save --------------------------------------------------------------------


def test_the_test_shows_reply_tokens_and_a_redacted_request(editor_client, upstream, bob):
    upstream.handler = reply_json(openai_reply("pong <b>bold</b>"))
    response = editor_client.post(
        reverse("integration-add"), {**add_payload(upstream), "action": "test"}, headers=HX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "Test passed" in html
    assert "pong &lt;b&gt;bold&lt;/b&gt;" in html
    for label in ("Prompt tokens", "Completion tokens", "Total tokens"):
        assert label in html
    assert "Bearer ••••" in html
    assert "curl -X POST" in html and "${API_KEY}" in html
    assert Integration.objects.count() == 0  # a test writes no configuration
    test = ConnectionTest.objects.get()
    assert (
        test.ok
        and test.integration is None
        and test.user == bob
        and test.subject == "Acme / Model A"
    )
    sent = upstream.requests[0]
    assert sent.headers["Authorization"] == f"Bearer {CANARY}"
    assert sent.headers["X-Org-Secret"] == CANARY_HEADER


def test_a_reply_with_script_is_shown_as_text(editor_client, upstream):
    upstream.handler = reply_json(
        openai_reply('<script>alert(1)</script><img src=x onerror="alert(2)">')
    )
    html = editor_client.post(
        reverse("integration-add"), {**add_payload(upstream), "action": "test"}, headers=HX
    ).content.decode()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_not_reported_usage_is_said_plainly(editor_client, upstream):
    upstream.handler = reply_json(openai_reply("x", usage=False))
    html = editor_client.post(
        reverse("integration-add"), {**add_payload(upstream), "action": "test"}, headers=HX
    ).content.decode()
    assert "not reported by the endpoint" in html


def test_save_after_a_passing_test_stores_exactly_the_tested_configuration(
    editor_client, upstream, bob
):
    template = (
        '{"model": "{{model}}", "messages": {{messages}}, "max_tokens": {{max_tokens}}, "seed": 42}'
    )
    data = add_payload(upstream, request_template=template)
    receipt = passing_receipt(editor_client, reverse("integration-add"), data)
    response = editor_client.post(
        reverse("integration-add"), {**data, "action": "save", "test_receipt": receipt}, headers=HX
    )
    assert response.status_code == 200 and response["HX-Redirect"].startswith("/integrations/")
    model = CustomModel.objects.get()
    assert model.enabled and model.last_test_status == "passing"
    assert model.request_template == {
        "model": "{{model}}",
        "messages": "{{messages}}",
        "max_tokens": "{{max_tokens}}",
        "seed": 42,
    }
    assert model.test_model_parameters == {"max_tokens": 16}
    integration = model.integration
    assert integration.created_by == bob and integration.endpoint == f"{upstream.url}/v1"
    assert integration.auth_profile.token == CANARY
    secret = IntegrationHeader.objects.get(name="X-Org-Secret")
    assert secret.secret and secret.value == CANARY_HEADER
    assert IntegrationHeader.objects.get(name="X-Team").value == "research"
    test = ConnectionTest.objects.get()
    assert test.integration == integration and test.model == model
    # The tested body is what was sent.
    assert upstream.requests[0].json()["seed"] == 42


def test_a_plain_post_without_javascript_can_test_and_save(client, bob, upstream):
    client.force_login(bob)
    data = add_payload(upstream)
    response = client.post(reverse("integration-add"), {**data, "action": "test"})
    assert response.status_code == 200 and "Test passed" in response.content.decode()
    response = client.post(
        reverse("integration-add"), {**data, "action": "save", "test_receipt": receipt_in(response)}
    )
    assert response.status_code == 302
    assert CustomModel.objects.count() == 1


def test_save_without_a_receipt_is_refused_and_saves_nothing(editor_client, upstream):
    response = editor_client.post(
        reverse("integration-add"), {**add_payload(upstream), "action": "save"}, headers=HX
    )
    assert response.status_code == 200
    assert "Run a passing test" in response.content.decode()
    assert Integration.objects.count() == 0 and AuthProfile.objects.count() == 0


def test_save_with_a_receipt_for_another_configuration_is_refused(editor_client, upstream):
    data = add_payload(upstream)
    receipt = passing_receipt(editor_client, reverse("integration-add"), data)
    changed = {**data, "model_id": "other-model", "action": "save", "test_receipt": receipt}
    response = editor_client.post(reverse("integration-add"), changed, headers=HX)
    assert "changed after it was tested" in response.content.decode()
    assert Integration.objects.count() == 0


def test_a_changed_secret_invalidates_the_receipt(editor_client, upstream):
    data = add_payload(upstream)
    receipt = passing_receipt(editor_client, reverse("integration-add"), data)
    changed = {
        **data,
        "new_auth_token": "sk-another-key-000000",
        "action": "save",
        "test_receipt": receipt,
    }
    response = editor_client.post(reverse("integration-add"), changed, headers=HX)
    assert "changed after it was tested" in response.content.decode()
    assert Integration.objects.count() == 0


def test_save_with_another_users_receipt_is_refused(client, alice, bob, upstream):
    data = add_payload(upstream)
    client.force_login(alice)
    receipt = passing_receipt(client, reverse("integration-add"), data)
    client.force_login(bob)
    response = client.post(
        reverse("integration-add"), {**data, "action": "save", "test_receipt": receipt}, headers=HX
    )
    assert "another user" in response.content.decode()
    assert Integration.objects.count() == 0


def test_save_with_an_expired_receipt_is_refused(editor_client, upstream, monkeypatch):
    data = add_payload(upstream)
    real_time = time.time
    monkeypatch.setattr(signing.time, "time", lambda: real_time() - 3600)
    receipt = passing_receipt(editor_client, reverse("integration-add"), data)
    monkeypatch.setattr(signing.time, "time", real_time)
    response = editor_client.post(
        reverse("integration-add"), {**data, "action": "save", "test_receipt": receipt}, headers=HX
    )
    assert "older than" in response.content.decode()
    assert Integration.objects.count() == 0


def test_a_forged_receipt_is_refused(editor_client, upstream):
    data = add_payload(upstream)
    response = editor_client.post(
        reverse("integration-add"),
        {**data, "action": "save", "test_receipt": "abc:def:ghi"},
        headers=HX,
    )
    assert "not valid" in response.content.decode()
    assert Integration.objects.count() == 0


def test_a_failing_test_gives_no_receipt_and_shows_the_hint(editor_client, upstream):
    upstream.handler = reply_json({"error": {"message": "Incorrect API key"}}, status=401)
    response = editor_client.post(
        reverse("integration-add"), {**add_payload(upstream), "action": "test"}, headers=HX
    )
    html = response.content.decode()
    assert (
        "Test failed" in html and "Check the auth profile" in html and "Incorrect API key" in html
    )
    assert receipt_in(response) == ""
    assert ConnectionTest.objects.get().ok is False


def test_save_as_draft_stores_it_disabled_without_a_test(editor_client, upstream):
    response = editor_client.post(
        reverse("integration-add"), {**add_payload(upstream), "action": "draft"}
    )
    assert response.status_code == 302
    model = CustomModel.objects.get()
    assert not model.enabled and model.last_test_status == "never"
    assert upstream.requests == []


def test_enabling_a_draft_needs_a_passing_test(editor_client, upstream):
    editor_client.post(reverse("integration-add"), {**add_payload(upstream), "action": "draft"})
    model = CustomModel.objects.get()
    upstream.handler = reply_json({"error": "down"}, status=503)
    editor_client.post(reverse("model-toggle", args=[model.pk]))
    model.refresh_from_db()
    assert not model.enabled and model.last_test_status == "failing"
    upstream.handler = reply_json(openai_reply("up"))
    editor_client.post(reverse("model-toggle", args=[model.pk]))
    model.refresh_from_db()
    assert model.enabled and model.last_test_status == "passing"


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("endpoint", "ftp://x", "http"),
        ("integration_name", "", "required"),
        ("model_id", "", "required"),
        ("new_auth_token", "", "Required for this kind"),
        ("new_auth_name", "", "Name the new auth profile"),
        ("request_template", '{"a": ', "Not valid JSON"),
        ("request_template", '{"a": "{{nope}}"}', "Unknown placeholder"),
        ("headers-0-name", "Bad Header", "Not a valid header name"),
        ("headers-0-name", "Host", "cannot be overridden"),
        ("timeout_seconds", "0", "greater than or equal"),
    ],
)
def test_bad_input_is_explained_next_to_the_field(editor_client, upstream, field, value, message):
    data = add_payload(upstream, **{field: value})
    response = editor_client.post(
        reverse("integration-add"), {**data, "action": "test"}, headers=HX
    )
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#connection-form"
    assert message in response.content.decode()
    assert upstream.requests == [] and Integration.objects.count() == 0


def test_a_duplicate_integration_name_is_refused(editor_client, upstream, make_integration):
    make_integration(name="Acme")
    response = editor_client.post(
        reverse("integration-add"), {**add_payload(upstream), "action": "test"}, headers=HX
    )
    assert "exists already" in response.content.decode()


def test_preview_shows_the_request_without_sending_it(editor_client, upstream):
    response = editor_client.post(
        reverse("integration-add"), {**add_payload(upstream), "action": "preview"}, headers=HX
    )
    html = response.content.decode()
    assert f"POST {upstream.url}/v1/chat/completions" in html
    assert upstream.requests == [] and ConnectionTest.objects.count() == 0


def test_the_url_preview_warns_about_common_mistakes(editor_client):
    response = editor_client.get(
        reverse("endpoint-preview"),
        {"endpoint": "https://api.x.io/v1/v1/chat/completions/", "protocol": "openai-chat"},
    )
    html = response.content.decode()
    assert "POST https://api.x.io/v1/chat/completions" in html
    assert (
        "Trailing slash" in html
        and "Doubled" in html
        and "already ended in /chat/completions" in html
    )


# --- edit ------------------------------------------------------------------------------


def edit_payload(model: CustomModel, **overrides) -> dict:
    integration = model.integration
    headers = list(integration.headers.order_by("id"))
    data = {
        "integration_name": integration.name,
        "endpoint": integration.endpoint,
        "protocol": integration.protocol,
        "timeout_seconds": str(integration.timeout_seconds),
        "verify_tls": "on",
        "auth_profile": str(integration.auth_profile_id),
        "test_model": str(model.pk),
        "headers-TOTAL_FORMS": str(len(headers)),
        "headers-INITIAL_FORMS": str(len(headers)),
    }
    for i, h in enumerate(headers):
        data[f"headers-{i}-id"] = str(h.pk)
        data[f"headers-{i}-name"] = h.name
        data[f"headers-{i}-value"] = "" if h.secret else h.value
        if h.secret:
            data[f"headers-{i}-secret"] = "on"
    data.update(overrides)
    return data


def test_an_unchanged_edit_saves_without_a_test(editor_client, make_integration, upstream):
    model = make_integration()
    url = reverse("integration-edit", args=[model.integration.pk])
    response = editor_client.post(
        url, {**edit_payload(model, description="new words"), "action": "save"}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    integration = Integration.objects.get(pk=model.integration.pk)
    assert integration.description == "new words"
    # Blank secret fields kept their values.
    assert (
        IntegrationHeader.objects.get(integration=integration, secret=True).value == CANARY_HEADER
    )
    assert integration.auth_profile.token == CANARY
    assert upstream.requests == []


def test_a_save_that_changes_nothing_says_so(editor_client, make_integration, upstream):
    model = make_integration()
    url = reverse("integration-edit", args=[model.integration.pk])
    response = editor_client.post(url, {**edit_payload(model), "action": "save"}, follow=True)
    assert "Nothing changed" in response.content.decode()
    response = editor_client.post(
        url, {**edit_payload(model, description="other"), "action": "save"}, follow=True
    )
    assert "Nothing changed" not in response.content.decode()


def test_a_changed_configuration_needs_a_new_test(editor_client, make_integration, upstream):
    model = make_integration()
    url = reverse("integration-edit", args=[model.integration.pk])
    data = edit_payload(model, timeout_seconds="9")
    response = editor_client.post(url, {**data, "action": "save"}, headers=HX)
    assert "Run a passing test" in response.content.decode()
    assert Integration.objects.get(pk=model.integration.pk).timeout_seconds == 5
    receipt = passing_receipt(editor_client, url, data)
    response = editor_client.post(
        url, {**data, "action": "save", "test_receipt": receipt}, headers=HX
    )
    assert "HX-Redirect" in response
    assert Integration.objects.get(pk=model.integration.pk).timeout_seconds == 9


def test_a_host_change_without_re_entering_the_secret_is_refused(
    editor_client, make_integration, upstream
):
    model = make_integration()
    url = reverse("integration-edit", args=[model.integration.pk])
    data = edit_payload(model, endpoint=f"http://localhost:{upstream.port}/v1")
    response = editor_client.post(url, {**data, "action": "test"}, headers=HX)
    html = response.content.decode()
    assert "type it again to send it to http://localhost" in html
    assert upstream.requests == []  # the stored key went nowhere
    data.update({"auth_reentry": "wrong-value", "headers-0-value": CANARY_HEADER})
    assert (
        "does not match"
        in editor_client.post(url, {**data, "action": "test"}, headers=HX).content.decode()
    )
    data["auth_reentry"] = CANARY
    receipt = passing_receipt(editor_client, url, data)
    assert upstream.requests[0].headers["Host"] == f"localhost:{upstream.port}"
    editor_client.post(url, {**data, "action": "save", "test_receipt": receipt})
    assert (
        Integration.objects.get(pk=model.integration.pk).endpoint
        == f"http://localhost:{upstream.port}/v1"
    )


def test_a_removed_header_is_deleted_on_save(editor_client, make_integration, upstream):
    model = make_integration()
    url = reverse("integration-edit", args=[model.integration.pk])
    data = edit_payload(model, **{"headers-1-DELETE": "on"})
    receipt = passing_receipt(editor_client, url, data)
    editor_client.post(url, {**data, "action": "save", "test_receipt": receipt})
    assert list(IntegrationHeader.objects.values_list("name", flat=True)) == ["X-Org-Secret"]


def test_add_model_to_an_integration_uses_its_settings(editor_client, make_integration, upstream):
    model = make_integration()
    url = reverse("model-add", args=[model.integration.pk])
    data = {
        "model_name": "Model B",
        "model_id": "model-b",
        "test_max_tokens": "8",
        "request_template": "",
    }
    receipt = passing_receipt(editor_client, url, data)
    assert upstream.requests[0].json()["model"] == "model-b"
    assert upstream.requests[0].headers["Authorization"] == f"Bearer {CANARY}"
    editor_client.post(url, {**data, "action": "save", "test_receipt": receipt})
    added = CustomModel.objects.get(name="Model B")
    assert added.integration == model.integration and added.last_test_status == "passing"


def test_edit_model_keeps_the_tested_body(editor_client, make_integration, upstream):
    model = make_integration()
    url = reverse("model-edit", args=[model.pk])
    template = json.dumps(
        {
            "model": "{{model}}",
            "messages": "{{messages}}",
            "max_tokens": "{{max_tokens}}",
            "top_k": 5,
        }
    )
    data = {
        "model_name": "Model A",
        "model_id": "test-model",
        "test_max_tokens": "16",
        "request_template": template,
    }
    receipt = passing_receipt(editor_client, url, data)
    editor_client.post(url, {**data, "action": "save", "test_receipt": receipt})
    model.refresh_from_db()
    assert model.request_template["top_k"] == 5


def test_fetch_models_lists_the_endpoint_models(editor_client, make_integration, upstream):
    upstream.handler = reply_json({"data": [{"id": "test-model"}, {"id": "bigger-model"}]})
    model = make_integration()
    html = editor_client.get(
        reverse("fetch-models", args=[model.integration.pk]), headers=HX
    ).content.decode()
    assert "bigger-model" in html and "already added" in html
    assert upstream.requests[0].path == "/v1/models"
    assert 'type="checkbox" name="model_id" value="bigger-model"' in html


def test_fetched_models_are_added_in_one_step_each_tested(
    editor_client, make_integration, upstream
):
    def handler(rec, h):
        wanted = rec.json().get("model")
        status = 404 if wanted == "missing-model" else 200
        body = {"error": {"message": "model not found"}} if status == 404 else openai_reply("hi")
        reply_json(body, status=status)(rec, h)

    upstream.handler = handler
    model = make_integration()
    url = reverse("fetch-models-add", args=[model.integration.pk])
    html = editor_client.post(
        url, {"model_id": ["bigger-model", "small-model", "missing-model"]}, headers=HX
    ).content.decode()
    assert html.count("added: its test passed") == 2
    assert "missing-model</strong> not added: Unknown model" in html
    # The Models table comes along (htmx swaps it out of band): it lists the new ones.
    table = html.split('<div id="model-table" hx-swap-oob="true">')[1]
    assert "<code>bigger-model</code>" in table and "<code>small-model</code>" in table
    added = CustomModel.objects.filter(integration=model.integration).order_by("model_id")
    assert [m.model_id for m in added] == ["bigger-model", "small-model", "test-model"]
    assert all(m.enabled and m.last_test_status == "passing" for m in added[:2])
    tested = [r.json()["model"] for r in upstream.requests]
    assert tested == ["bigger-model", "small-model", "missing-model"]
    # Nothing ticked, or an ID already here, is explained.
    html = editor_client.post(url, {}, headers=HX).content.decode()
    assert "Tick at least one model to add." in html
    html = editor_client.post(url, {"model_id": ["test-model"]}, headers=HX).content.decode()
    assert "already here" in html


def test_the_catalog_says_why_a_model_failed_even_when_disabled(
    editor_client, make_integration, upstream
):
    upstream.handler = reply_json({"error": {"message": "bad key"}}, status=401)
    model = make_integration()
    row = editor_client.post(reverse("model-test", args=[model.pk]), headers=HX).content.decode()
    assert "Authentication failed: 401 from the endpoint" in row  # Test now: the reason in place
    assert "Check the auth profile" in row
    CustomModel.objects.filter(pk=model.pk).update(enabled=False)
    page = editor_client.get(reverse("home")).content.decode()
    assert "Disabled" in page and "last test failed" in page
    assert "Authentication failed: 401 from the endpoint" in page
    upstream.handler = reply_json(openai_reply("ok"))
    CustomModel.objects.filter(pk=model.pk).update(enabled=True)
    row = editor_client.post(reverse("model-test", args=[model.pk]), headers=HX).content.decode()
    assert "Test passed in" in row and "Authentication failed" not in row


# --- delete and auth profiles -------------------------------------------------------------


def test_deleting_an_integration_names_what_goes_then_deletes(editor_client, make_integration):
    model = make_integration()
    url = reverse("integration-delete", args=[model.integration.pk])
    html = editor_client.get(url).content.decode()
    assert "Model A" in html and "test record" in html
    assert editor_client.post(url).status_code == 302
    assert not Integration.objects.exists() and not CustomModel.objects.exists()


def test_deleting_a_model_keeps_the_integration(editor_client, make_integration):
    model = make_integration()
    answer = editor_client.post(reverse("model-delete", args=[model.pk]))
    assert answer["Location"] == reverse("integration-detail", args=[model.integration.pk])
    assert not CustomModel.objects.exists() and Integration.objects.exists()


def test_a_delete_started_in_the_catalog_returns_to_the_catalog(editor_client, make_integration):
    model = make_integration()
    url = reverse("model-delete", args=[model.pk])
    page = editor_client.get(url, {"from": "catalog"}).content.decode()
    assert 'name="from" value="catalog"' in page
    answer = editor_client.post(url, {"from": "catalog"})
    assert answer["Location"] == reverse("home")
    assert not CustomModel.objects.exists()


def test_an_auth_profile_in_use_cannot_be_deleted(editor_client, make_integration):
    model = make_integration()
    profile = model.integration.auth_profile
    url = reverse("auth-profile-delete", args=[profile.pk])
    assert "cannot be deleted" in editor_client.get(url).content.decode()
    editor_client.post(url)
    assert AuthProfile.objects.filter(pk=profile.pk).exists()
    model.integration.delete()
    editor_client.post(url)
    assert not AuthProfile.objects.filter(pk=profile.pk).exists()


def test_an_auth_profile_edit_with_blank_secret_keeps_it(editor_client, make_integration):
    profile = make_integration().integration.auth_profile
    url = reverse("auth-profile-edit", args=[profile.pk])
    response = editor_client.post(url, {"name": "Renamed key", "kind": "bearer", "token": ""})
    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.name == "Renamed key" and profile.token == CANARY


def test_creating_an_auth_profile_checks_required_parts(editor_client):
    response = editor_client.post(
        reverse("auth-profile-add"), {"name": "H", "kind": "header", "token": "x"}
    )
    assert "Required for this kind" in response.content.decode()
    assert not AuthProfile.objects.exists()


# --- catalog --------------------------------------------------------------------------------


def test_the_catalog_filters_by_status_and_integration(client, charlie, make_integration):
    model = make_integration()
    other = CustomModel.objects.create(
        integration=model.integration, name="Other", model_id="o", last_test_status="failing"
    )
    client.force_login(charlie)
    html = client.get(reverse("home"), {"status": "failing"}).content.decode()
    assert "Other" in html and "Model A" not in html
    html = client.get(reverse("home"), {"integration": "Nope"}).content.decode()
    assert "match these filters" in html
    assert other.pk


def test_test_now_in_the_catalog_moves_the_badge(editor_client, make_integration, upstream):
    model = make_integration()
    response = editor_client.post(reverse("model-test", args=[model.pk]), headers=HX)
    assert response.status_code == 200 and "Passing" in response.content.decode()
    assert CustomModel.objects.get(pk=model.pk).last_test_status == "passing"


def test_a_test_record_offers_curl_with_the_secret_as_a_variable(
    editor_client, make_integration, upstream
):
    model = make_integration()
    editor_client.post(reverse("model-test", args=[model.pk]))
    test = ConnectionTest.objects.get()
    html = editor_client.get(reverse("connection-test", args=[test.pk])).content.decode()
    assert "curl -X POST" in html and "Bearer ${API_KEY}" in html


def test_the_catalog_uses_a_constant_number_of_queries(
    client, charlie, make_integration, django_assert_max_num_queries
):
    model = make_integration()
    CustomModel.objects.bulk_create(
        CustomModel(integration=model.integration, name=f"M{i:04}", model_id=f"m{i}")
        for i in range(300)
    )
    client.force_login(charlie)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("home"))
    assert response.status_code == 200 and "301 models" in response.content.decode()


def test_changed_profile_credentials_are_tested_before_they_are_saved(
    editor_client, make_integration, upstream
):
    model = make_integration()
    profile = model.integration.auth_profile
    url = reverse("auth-profile-edit", args=[profile.pk])

    def only_new_key(rec, h):
        if rec.headers.get("Authorization") == "Bearer sk-new-key-123456789":
            reply_json(openai_reply("ok"))(rec, h)
        else:
            reply_json({"error": {"message": "bad key"}}, status=401)(rec, h)

    upstream.handler = only_new_key
    response = editor_client.post(
        url, {"name": profile.name, "kind": "bearer", "token": "sk-wrong-key-000000000"}
    )
    html = response.content.decode()
    assert response.status_code == 200 and "Not saved" in html and "Check the auth profile" in html
    profile.refresh_from_db()
    assert profile.token == CANARY
    assert CustomModel.objects.get(pk=model.pk).enabled
    # Refused credentials say nothing about the saved ones: the badge stays as it was.
    assert CustomModel.objects.get(pk=model.pk).last_test_status == "never"

    response = editor_client.post(
        url, {"name": profile.name, "kind": "bearer", "token": "sk-new-key-123456789"}
    )
    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.token == "sk-new-key-123456789"
    assert CustomModel.objects.get(pk=model.pk).last_test_status == "passing"


def test_saving_failing_credentials_anyway_disables_the_failing_models(
    editor_client, make_integration, upstream
):
    upstream.handler = reply_json({"error": {"message": "bad key"}}, status=401)
    model = make_integration()
    profile = model.integration.auth_profile
    url = reverse("auth-profile-edit", args=[profile.pk])
    data = {
        "name": profile.name,
        "kind": "bearer",
        "token": "sk-other-key-00000000",
        "action": "save_disable",
    }
    assert editor_client.post(url, data).status_code == 302
    profile.refresh_from_db()
    model.refresh_from_db()
    assert profile.token == "sk-other-key-00000000"
    assert not model.enabled and model.last_test_status == "failing"


def test_renaming_a_profile_needs_no_test(editor_client, make_integration, upstream):
    profile = make_integration().integration.auth_profile
    editor_client.post(
        reverse("auth-profile-edit", args=[profile.pk]),
        {"name": "New name", "kind": "bearer", "token": ""},
    )
    assert upstream.requests == []


def test_a_models_edit_page_says_where_it_is_called_and_with_which_key(
    editor_client, make_integration
):
    model = make_integration()
    page = editor_client.get(reverse("model-edit", args=[model.pk])).content.decode()
    assert f"<code>{model.integration.endpoint}</code>" in page
    assert "Local key (" in page  # the integration's auth profile, by name and kind
    assert reverse("integration-edit", args=[model.integration.pk]) in page
