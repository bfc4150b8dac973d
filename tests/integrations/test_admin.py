"""The Django admin: secrets write-only and masked, and a working Test connection action."""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations.models import AuthProfile, ConnectionTest, CustomModel
from tests.conftest import CANARY, CANARY_HEADER
from tests.upstream import openai_reply, reply_json


@pytest.fixture
def admin_client(client, alice):
    client.force_login(alice)
    return client


@pytest.mark.parametrize(
    "url_name, obj",
    [
        ("admin:integrations_authprofile_changelist", None),
        ("admin:integrations_authprofile_change", "profile"),
        ("admin:integrations_integration_changelist", None),
        ("admin:integrations_integration_change", "integration"),
        ("admin:integrations_custommodel_change", "model"),
        ("admin:integrations_connectiontest_changelist", None),
    ],
)
def test_admin_pages_never_show_a_secret(admin_client, make_integration, url_name, obj):
    model = make_integration()
    objects = {
        "profile": model.integration.auth_profile,
        "integration": model.integration,
        "model": model,
    }
    args = [objects[obj].pk] if obj else []
    response = admin_client.get(reverse(url_name, args=args))
    assert response.status_code == 200
    html = response.content.decode()
    assert CANARY not in html and CANARY_HEADER not in html
    if obj == "profile":
        assert "••••" in html and "Leave blank to keep" in html


def test_saving_an_auth_profile_with_a_blank_secret_keeps_it(admin_client, make_integration):
    profile = make_integration().integration.auth_profile
    response = admin_client.post(
        reverse("admin:integrations_authprofile_change", args=[profile.pk]),
        {
            "name": "Renamed",
            "kind": "bearer",
            "token": "",
            "header_name": "",
            "query_param": "",
            "body_path": "",
            "username": "",
            "password": "",
            "token_url": "",
            "client_id": "",
            "client_secret": "",
            "scope": "",
        },
    )
    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.name == "Renamed" and profile.token == CANARY


def test_the_admin_normalizes_the_endpoint(admin_client, alice):
    response = admin_client.post(
        reverse("admin:integrations_integration_add"),
        {
            "name": "N",
            "description": "",
            "endpoint": "https://api.example.com/v1/chat/completions/",
            "protocol": "openai-chat",
            "api_version": "",
            "deployment": "",
            "request_template": "null",
            "content_path": "",
            "finish_reason_path": "",
            "prompt_tokens_path": "",
            "completion_tokens_path": "",
            "total_tokens_path": "",
            "timeout_seconds": "60",
            "verify_tls": "on",
            "ca_bundle": "",
            "proxy_url": "",
            "enabled": "on",
            "headers-TOTAL_FORMS": "0",
            "headers-INITIAL_FORMS": "0",
            "models-TOTAL_FORMS": "0",
            "models-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    from integrations.models import Integration

    integration = Integration.objects.get(name="N")
    assert integration.endpoint == "https://api.example.com/v1"
    assert integration.created_by == alice


def test_the_test_connection_action_records_a_test_and_moves_the_badge(
    admin_client, make_integration, upstream
):
    upstream.handler = reply_json(openai_reply("pong"))
    model = make_integration()
    response = admin_client.post(
        reverse("admin:integrations_custommodel_changelist"),
        {"action": "test_connection", "_selected_action": [str(model.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    assert "1 model(s) passed" in response.content.decode()
    model.refresh_from_db()
    assert model.last_test_status == "passing"
    test = ConnectionTest.objects.get(model=model)
    assert test.ok and test.status_code == 200 and test.config_hash


def test_a_failing_action_shows_the_hint_without_the_secret(
    admin_client, make_integration, upstream
):
    upstream.handler = reply_json({"error": {"message": f"bad key {CANARY}"}}, status=401)
    model = make_integration()
    response = admin_client.post(
        reverse("admin:integrations_integration_changelist"),
        {"action": "test_connection", "_selected_action": [str(model.integration.pk)]},
        follow=True,
    )
    html = response.content.decode()
    assert "Check the auth profile" in html
    assert CANARY not in html
    assert CustomModel.objects.get(pk=model.pk).last_test_status == "failing"


def test_connection_tests_are_read_only_in_the_admin(admin_client, make_integration):
    assert admin_client.get(reverse("admin:integrations_connectiontest_add")).status_code == 403


def test_a_plain_user_cannot_reach_the_admin(client, bob):
    client.force_login(bob)
    response = client.get(reverse("admin:integrations_authprofile_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert AuthProfile.objects.count() == 0
