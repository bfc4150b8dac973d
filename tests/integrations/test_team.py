"""Users and roles, deactivation, login throttling, API tokens in the UI, the audit trail."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from integrations.models import ApiToken, AuditEvent
from integrations.team.roles import role_of
from tests.conftest import CANARY, CANARY_HEADER

User = get_user_model()


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def test_an_admin_invites_a_user_who_sets_a_password_and_logs_in(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("team-users"), {"username": "dana", "email": "dana@example.com", "role": "Editor"}
    )
    html = response.content.decode()
    link = re.search(r'<pre id="invite-link">([^<]+)</pre>', html).group(1)
    dana = User.objects.get(username="dana")
    assert role_of(dana) == "Editor" and not dana.has_usable_password()
    client.logout()
    path = link.split("testserver")[1]
    response = client.get(path, follow=True)
    form_url = response.redirect_chain[-1][0]
    client.post(
        form_url, {"new_password1": "a-long-new-pass-42", "new_password2": "a-long-new-pass-42"}
    )
    assert client.login(username="dana", password="a-long-new-pass-42")
    assert "user_invite" in actions()


def test_only_admins_manage_users(client, bob, charlie):
    for user in (bob, charlie):
        client.force_login(user)
        assert client.get(reverse("team-users")).status_code == 403
        assert (
            client.post(reverse("team-user-role", args=["charlie"]), {"role": "Admin"}).status_code
            == 403
        )
        assert client.get(reverse("audit")).status_code == 403
        assert client.get(reverse("export-import")).status_code == 403
    assert role_of(User.objects.get(username="charlie")) == "Member"


def test_a_role_change_is_audited_with_old_and_new(client, alice, charlie):
    client.force_login(alice)
    client.post(reverse("team-user-role", args=["charlie"]), {"role": "Editor"})
    assert role_of(User.objects.get(username="charlie")) == "Editor"
    event = AuditEvent.objects.get(action="role_change")
    assert event.changes == {"role": ["Member", "Editor"]} and event.username == "alice"


def test_an_admin_cannot_demote_or_deactivate_themself(client, alice):
    client.force_login(alice)
    client.post(reverse("team-user-active", args=["alice"]))
    assert User.objects.get(username="alice").is_active


def test_deactivation_ends_sessions_and_tokens_at_once(client, alice, bob, api_token):
    token = api_token(bob)
    bob_client = client.__class__()
    bob_client.force_login(bob)
    assert bob_client.get(reverse("home")).status_code == 200
    client.force_login(alice)
    client.post(reverse("team-user-active", args=["bob"]))
    response = bob_client.get(reverse("home"))
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert (
        client.get("/api/v2/llms", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )
    assert "user_deactivate" in actions()


def test_login_is_throttled_per_account_with_a_clear_message(client, bob, settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 3
    for _ in range(3):
        client.post(reverse("login"), {"username": "bob", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "bob", "password": "pw-bob-123"})
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert actions().count("login_failed") == 3


def test_login_is_throttled_per_ip(client, bob, charlie, settings):
    settings.LOGIN_FAILURES_PER_IP = 2
    client.post(reverse("login"), {"username": "bob", "password": "wrong"})
    client.post(reverse("login"), {"username": "charlie", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "charlie", "password": "pw-charlie-123"})
    assert "Too many failed logins" in response.content.decode()


def test_the_admin_login_shares_the_lockout(client, alice, bob, settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 3
    for _ in range(3):
        client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    response = client.post(
        reverse("admin:login"), {"username": "alice", "password": "pw-alice-123"}
    )
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # And failures at the admin's door count too.
    client.post(reverse("admin:login"), {"username": "bob", "password": "wrong"})
    for _ in range(2):
        client.post(reverse("admin:login"), {"username": "bob", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "bob", "password": "pw-bob-123"})
    assert "Too many failed logins" in response.content.decode()


def test_production_sends_no_reset_mail_unless_mail_is_set_up(client, settings, bob):
    settings.PASSWORD_RESET_BY_EMAIL = False
    response = client.post(reverse("password_reset"), {"email": "bob@example.com"})
    assert "cannot mail you a reset link" in response.content.decode()
    from django.core import mail

    assert mail.outbox == []


def test_a_good_login_is_audited(client, bob):
    client.post(reverse("login"), {"username": "bob", "password": "pw-bob-123"})
    event = AuditEvent.objects.get(action="login")
    assert event.username == "bob" and event.ip == "127.0.0.1"


def test_tokens_are_shown_once_stored_hashed_and_revocable(client, charlie):
    client.force_login(charlie)
    response = client.post(reverse("api-tokens"), {"name": "CI", "expires_in_days": "30"})
    raw = re.search(r'<pre id="new-token">([^<]+)</pre>', response.content.decode()).group(1)
    token = ApiToken.objects.get()
    assert raw.startswith("byo_") and raw not in str(ApiToken.objects.values().get())
    assert raw not in client.get(reverse("api-tokens")).content.decode()
    assert client.get("/api/v2/llms", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    client.post(reverse("api-token-revoke", args=[token.pk]))
    assert client.get("/api/v2/llms", headers={"Authorization": f"Bearer {raw}"}).status_code == 401
    assert actions()[-2:] == ["token_create", "token_revoke"] or {
        "token_create",
        "token_revoke",
    } <= set(actions())


def test_a_user_cannot_revoke_someone_elses_token(client, bob, charlie, api_token):
    api_token(bob)
    token = ApiToken.objects.get(user=bob)
    client.force_login(charlie)
    assert client.post(reverse("api-token-revoke", args=[token.pk])).status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None


# --- audit trail ------------------------------------------------------------------------------


def test_every_action_leaves_an_audit_row_without_secrets(client, bob, upstream, make_integration):
    from tests.integrations.test_connection_views import add_payload, passing_receipt

    client.force_login(bob)
    data = add_payload(upstream)
    receipt = passing_receipt(client, reverse("integration-add"), data)
    client.post(reverse("integration-add"), {**data, "action": "save", "test_receipt": receipt})
    from integrations.models import AuthProfile, CustomModel

    model = CustomModel.objects.get()
    client.post(reverse("model-toggle", args=[model.pk]))  # disable
    client.post(reverse("model-toggle", args=[model.pk]))  # test + enable
    client.post(reverse("model-test", args=[model.pk]))
    client.post(
        reverse("sandbox-run-now"),
        {"model": str(model.pk), "user_prompt": "hi"},
        headers={"HX-Request": "true"},
    )
    profile = AuthProfile.objects.get()
    client.post(
        reverse("auth-profile-edit", args=[profile.pk]),
        {"name": "Renamed", "kind": "bearer", "token": "sk-rotated-0000000000"},
    )
    client.post(reverse("model-delete", args=[model.pk]))
    seen = set(actions())
    assert {"test", "create", "disable", "enable", "sandbox_run", "update", "delete"} <= seen
    assert AuditEvent.objects.filter(action="create", object_type="authprofile").exists()
    update = AuditEvent.objects.filter(action="update", object_type="authprofile").get()
    assert update.changes["token"] == ["changed"] and update.changes["name"] == [
        "Acme key",
        "Renamed",
    ]
    for row in AuditEvent.objects.values():
        text = str(row)
        assert CANARY not in text and CANARY_HEADER not in text and "sk-rotated" not in text


def test_the_audit_page_filters_and_is_admin_only(client, alice, charlie):
    client.force_login(charlie)
    client.post(reverse("api-tokens"), {"name": "one"})
    client.force_login(alice)
    html = client.get(reverse("audit"), {"action": "token_create"}).content.decode()
    assert "Token created" in html and "charlie" in html
    html = client.get(reverse("audit"), {"user": "nobody"}).content.decode()
    assert "No events match" in html


def test_audit_rows_cannot_be_changed_or_deleted(client, alice):
    client.force_login(alice)
    client.post(reverse("api-tokens"), {"name": "one"})
    event = AuditEvent.objects.first()
    event.detail = "tampered"
    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(ValueError):
        event.delete()
    assert (
        client.get(reverse("admin:integrations_auditevent_change", args=[event.pk])).status_code
        == 200
    )
    response = client.post(
        reverse("admin:integrations_auditevent_delete", args=[event.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_admin_changes_are_audited(client, alice, make_integration):
    model = make_integration()
    client.force_login(alice)
    client.post(
        reverse("admin:integrations_custommodel_changelist"),
        {"action": "delete_selected", "_selected_action": [str(model.pk)], "post": "yes"},
    )
    assert AuditEvent.objects.filter(action="delete", object_type="custommodel").exists()


def test_a_create_entry_lists_what_was_set_and_the_filter_names_objects(
    client, alice, make_integration
):
    model = make_integration()
    from integrations import audit

    audit.record_created(None, model.integration)
    event = AuditEvent.objects.filter(action="create", object_type="integration").latest(
        "created_at"
    )
    assert "proxy_url" not in event.changes and "ca_bundle" not in event.changes
    assert event.changes["name"] == [None, "Local"]
    assert all(values[-1] not in (None, "", [], {}) for values in event.changes.values())
    client.force_login(alice)
    html = client.get(reverse("audit")).content.decode()
    assert '<option value="integration">Integration</option>' in html
    assert "∅ →" not in html


def test_the_audit_trail_names_objects_and_linked_records_as_people_know_them(
    client, alice, make_integration
):
    from integrations import audit

    model = make_integration(name="Acme")
    audit.record_created(None, model)
    client.force_login(alice)
    page = client.get(reverse("audit")).content.decode()
    event = AuditEvent.objects.filter(object_type="custommodel").latest("created_at")
    assert event.changes["integration"] == [None, "Acme"]  # its name, not its id
    assert str(model.integration_id) not in page
    assert "Custom model</small>" in page and ">custommodel<" not in page
