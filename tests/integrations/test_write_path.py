"""Every entry point writes configurations through integrations.writes: an untested or
failing change writes nothing, a passing one writes exactly once. Real local upstreams."""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations import transfer
from integrations.models import AuthProfile, CustomModel, Integration, IntegrationHeader
from tests.conftest import CANARY
from tests.integrations.test_api import Api
from tests.integrations.test_connection_views import HX, add_payload, passing_receipt
from tests.upstream import openai_reply, reply_json

REFUSE = reply_json({"error": {"message": "invalid api key"}}, status=401)


def rows() -> tuple[int, int, int, int]:
    return (
        Integration.objects.count(),
        CustomModel.objects.count(),
        AuthProfile.objects.count(),
        IntegrationHeader.objects.count(),
    )


@pytest.fixture
def editor(client, bob):
    client.force_login(bob)
    return client


def test_the_add_form_writes_nothing_untested_or_failing_and_once_when_passing(editor, upstream):
    url, data = reverse("integration-add"), add_payload(upstream)
    editor.post(url, {**data, "action": "save"}, headers=HX)  # no receipt
    upstream.handler = REFUSE
    editor.post(url, {**data, "action": "test"}, headers=HX)
    editor.post(url, {**data, "action": "save", "test_receipt": "forged"}, headers=HX)
    assert rows() == (0, 0, 0, 0)
    upstream.handler = reply_json(openai_reply())
    receipt = passing_receipt(editor, url, data)
    editor.post(url, {**data, "action": "save", "test_receipt": receipt}, headers=HX)
    editor.post(url, {**data, "action": "save", "test_receipt": receipt}, headers=HX)  # again
    assert rows() == (1, 1, 1, 2)


def test_the_api_writes_nothing_failing_and_once_when_passing(client, bob, api_token, upstream):
    api = Api(client, api_token(bob))
    payload = {
        "name": "Api",
        "endpoint": f"{upstream.url}/v1",
        "auth": {"type": "bearer", "token": CANARY},
        "headers": [{"name": "X-Team", "value": "t"}],
        "models": [{"name": "A", "model_id": "a"}, {"name": "B", "model_id": "b"}],
    }
    upstream.handler = REFUSE
    assert api.call("post", "integrations", payload)[0] == 400
    assert rows() == (0, 0, 0, 0)
    upstream.handler = reply_json(openai_reply())
    assert api.call("post", "integrations", payload)[0] == 201
    assert api.call("post", "integrations", payload)[0] == 409  # the name is taken
    assert rows() == (1, 2, 1, 1)


def test_the_profile_edit_writes_nothing_failing(editor, make_integration, upstream):
    profile = make_integration().integration.auth_profile
    upstream.handler = REFUSE
    editor.post(
        reverse("auth-profile-edit", args=[profile.pk]),
        {"name": profile.name, "kind": "bearer", "token": "sk-refused-0123456789"},
    )
    profile.refresh_from_db()
    assert profile.token == CANARY


def test_the_toggle_enables_only_after_a_passing_test(editor, make_integration, upstream):
    model = make_integration(enabled=False)
    upstream.handler = REFUSE
    editor.post(reverse("model-toggle", args=[model.pk]))
    model.refresh_from_db()
    assert not model.enabled
    upstream.handler = reply_json(openai_reply())
    editor.post(reverse("model-toggle", args=[model.pk]))
    model.refresh_from_db()
    assert model.enabled and model.last_test_status == "passing"


def test_import_writes_a_failing_model_disabled_with_the_reason(make_integration, upstream):
    make_integration()
    data = transfer.export(include_secrets=True, passphrase="correct horse battery")
    Integration.objects.all().delete()
    AuthProfile.objects.all().delete()
    upstream.handler = REFUSE
    report = transfer.import_data(data, "correct horse battery")
    assert rows()[:2] == (1, 1)
    assert not CustomModel.objects.get().enabled
    assert "401" in report.disabled[0]
    upstream.handler = reply_json(openai_reply())
    report = transfer.import_data(data, "correct horse battery")  # the same file again
    assert rows()[:2] == (1, 1)
