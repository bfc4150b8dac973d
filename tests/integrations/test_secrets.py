"""Secrets at rest: encrypted, fail closed on a wrong key, rotate without loss."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from integrations import writes
from integrations.models import AuthProfile, CustomModel, IntegrationHeader
from integrations.secrets import CredentialUnreadable, UnreadableSecret, mask, reveal
from tests.conftest import CANARY, CANARY_HEADER

OTHER_KEY = Fernet.generate_key().decode()


def raw_column(table: str, column: str, pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {column} FROM {table} WHERE id = %s",
            [pk.hex if connection.vendor == "sqlite" else pk],
        )
        return cursor.fetchone()[0]


def test_secrets_are_stored_encrypted(make_integration):
    model = make_integration()
    profile = model.integration.auth_profile
    stored = raw_column("integrations_authprofile", "token", profile.pk)
    assert CANARY not in stored
    assert AuthProfile.objects.get(pk=profile.pk).token == CANARY


def test_a_wrong_key_fails_closed_and_sends_nothing(make_integration, upstream):
    model = make_integration()
    with override_settings(FIELD_ENCRYPTION_KEY=[OTHER_KEY]):
        profile = AuthProfile.objects.get(pk=model.integration.auth_profile_id)
        assert isinstance(profile.token, UnreadableSecret)
        with pytest.raises(
            CredentialUnreadable, match="credential unreadable|unreadable: re-enter"
        ):
            reveal(profile.token)
        assert mask(profile.token) == "unreadable: re-enter"
        fresh = CustomModel.objects.select_related("integration__auth_profile").get(pk=model.pk)
        result, test = writes.test_model(fresh)
    assert not result.ok
    assert result.error.kind == "credential"
    assert "re-enter it or restore the key" in result.error.message
    assert upstream.requests == []
    assert test.ok is False and test.error_kind == "credential"


def test_saving_a_row_with_an_unreadable_secret_does_not_double_encrypt(make_integration):
    model = make_integration()
    pk = model.integration.auth_profile_id
    before = raw_column("integrations_authprofile", "token", pk)
    with override_settings(FIELD_ENCRYPTION_KEY=[OTHER_KEY]):
        profile = AuthProfile.objects.get(pk=pk)
        profile.name = "renamed while the key was wrong"
        profile.save()
    assert raw_column("integrations_authprofile", "token", pk) == before
    # Back on the right key the secret reads as before.
    assert AuthProfile.objects.get(pk=pk).token == CANARY


def test_rotation_re_encrypts_with_the_first_key_and_old_rows_still_read(make_integration):
    model = make_integration()
    pk = model.integration.auth_profile_id
    header = IntegrationHeader.objects.get(integration=model.integration, secret=True)
    old_raw = raw_column("integrations_authprofile", "token", pk)
    new_key = Fernet.generate_key().decode()
    keys = [new_key, *settings.FIELD_ENCRYPTION_KEY]
    with override_settings(FIELD_ENCRYPTION_KEY=keys):
        # Before rotation, old rows read through the second key.
        assert AuthProfile.objects.get(pk=pk).token == CANARY
        call_command("rotate_encryption_key", stdout=(out := __import__("io").StringIO()))
        assert "re-encrypted" in out.getvalue()
        assert "Total: " in out.getvalue()
    new_raw = raw_column("integrations_authprofile", "token", pk)
    assert new_raw != old_raw
    assert Fernet(new_key).decrypt(new_raw.encode()).decode() == CANARY
    with override_settings(FIELD_ENCRYPTION_KEY=[new_key]):
        assert AuthProfile.objects.get(pk=pk).token == CANARY
        assert IntegrationHeader.objects.get(pk=header.pk).value == CANARY_HEADER


def test_rotation_reports_unreadable_rows_and_leaves_them(make_integration):
    model = make_integration()
    pk = model.integration.auth_profile_id
    before = raw_column("integrations_authprofile", "token", pk)
    with (
        override_settings(FIELD_ENCRYPTION_KEY=[OTHER_KEY]),
        pytest.raises(CommandError, match="unreadable"),
    ):
        call_command(
            "rotate_encryption_key",
            stdout=__import__("io").StringIO(),
            stderr=__import__("io").StringIO(),
        )
    assert raw_column("integrations_authprofile", "token", pk) == before


@pytest.mark.parametrize(
    "value, shown",
    [("", ""), ("short", "••••"), ("sk-abcdefghijklmnop", "••••mnop")],
)
def test_mask_shows_at_most_the_last_four_characters(value, shown):
    assert mask(value) == shown
