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
        assert "••••" in html and "Change it in the console" in html


def test_credentials_endpoints_and_headers_cannot_be_changed_in_the_admin(
    admin_client, make_integration, upstream
):
    model = make_integration()
    profile, integration = model.integration.auth_profile, model.integration
    response = admin_client.post(
        reverse("admin:integrations_authprofile_change", args=[profile.pk]),
        {"name": "Renamed", "kind": "basic", "token": "sk-new-one-0000000000"},
    )
    assert response.status_code == 302
    profile.refresh_from_db()
    assert (profile.name, profile.kind, profile.token) == ("Renamed", "bearer", CANARY)
    header = integration.headers.get(name="X-Org-Secret")
    response = admin_client.post(
        reverse("admin:integrations_integration_change", args=[integration.pk]),
        {
            "name": integration.name,
            "description": "",
            "enabled": "on",
            "endpoint": "http://attacker.example/v1",
            "proxy_url": "http://attacker.example:3128",
            "headers-TOTAL_FORMS": "1",
            "headers-INITIAL_FORMS": "1",
            "headers-0-id": str(header.pk),
            "headers-0-integration": str(integration.pk),
            "headers-0-secret": "",
            "models-TOTAL_FORMS": "0",
            "models-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    integration.refresh_from_db()
    header.refresh_from_db()
    assert integration.endpoint == f"{upstream.url}/v1" and integration.proxy_url == ""
    assert header.secret and header.value == CANARY_HEADER  # the flag keeps its meaning
    assert admin_client.get(reverse("admin:integrations_integration_add")).status_code == 403


def test_enabling_a_model_in_the_admin_runs_its_test_first(
    admin_client, make_integration, upstream
):
    model = make_integration(enabled=False)
    change = reverse("admin:integrations_custommodel_change", args=[model.pk])
    form = {"name": model.name, "description": "", "enabled": "on"}
    upstream.handler = reply_json({"error": {"message": "nope"}}, status=401)
    response = admin_client.post(change, form, follow=True)
    assert "Not enabled" in response.content.decode()
    model.refresh_from_db()
    assert not model.enabled and model.last_test_status == "failing"
    upstream.handler = reply_json(openai_reply())
    admin_client.post(change, form)
    model.refresh_from_db()
    assert model.enabled and model.last_test_status == "passing"


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


def test_admin_deletes_go_through_the_write_path(admin_client, make_integration):
    from integrations.models import AuditEvent, Integration, StoredSecret

    model = make_integration()
    profile = model.integration.auth_profile
    secret = StoredSecret.objects.create(name="in use", value="v-0123456789")
    AuthProfile.objects.filter(pk=profile.pk).update(stored_secret=secret)
    response = admin_client.post(
        reverse("admin:integrations_storedsecret_delete", args=[secret.pk]),
        {"post": "yes"},
        follow=True,
    )
    # Refused, naming the profile that uses it (the foreign key protects it).
    assert StoredSecret.objects.filter(pk=secret.pk).exists()
    assert "Cannot delete stored secret" in response.content.decode()
    assert profile.name in response.content.decode()
    admin_client.post(
        reverse("admin:integrations_integration_delete", args=[model.integration.pk]),
        {"post": "yes"},
    )
    assert not Integration.objects.exists()
    assert AuditEvent.objects.filter(action="delete", object_type="integration").exists()
