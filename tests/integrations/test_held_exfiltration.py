"""Held-secret handles belong to the person who typed the secret, in the form they typed it.

The round-3 audit moved another person's stored key with them: the edit page of an
auth profile rendered a handle for the stored token (the form's initial data held the
plaintext), and posting that handle on the Add page with another endpoint sent the
token there as if the Editor had typed it. Here every way of doing that is tried against
a listener on a second origin: a token, a Basic password, an OAuth client secret and a
stored secret. The secret never arrives.
"""

from __future__ import annotations

import re

from django.urls import reverse

from integrations import held
from integrations.llm import inputs
from integrations.models import AuthKind, AuthProfile, Integration
from tests.conftest import CANARY
from tests.integrations.test_connection_views import HX, add_payload
from tests.integrations.test_secret_origin import assert_never_arrived, listener  # noqa: F401


def handles(html: str) -> dict[str, str]:
    return dict(re.findall(r'name="([^"]+__held)" value="([^"]+)"', html))


def _profile(upstream, kind: str, **fields) -> AuthProfile:
    profile = AuthProfile.objects.create(
        name=f"Alice's {kind}", kind=kind, bound_origins=[inputs.route(upstream.url)], **fields
    )
    Integration.objects.create(
        name=f"Uses {kind}", endpoint=f"{upstream.url}/v1", auth_profile=profile
    )
    return profile


def test_an_edit_page_carries_no_handle_for_a_stored_secret(client, bob, upstream):
    for kind, fields in (
        (AuthKind.BEARER, {"token": CANARY}),
        (AuthKind.BASIC, {"username": "u", "password": CANARY}),
        (
            AuthKind.OAUTH2,
            {"token_url": f"{upstream.url}/token", "client_id": "c", "client_secret": CANARY},
        ),
    ):
        profile = _profile(upstream, kind, **fields)
        client.force_login(bob)
        html = client.get(reverse("auth-profile-edit", args=[profile.pk])).content.decode()
        assert handles(html) == {}, kind
        assert CANARY not in html


def _exfiltrate_with(client, listener, field: str, handle: str, **extra):  # noqa: F811
    fields = {"new_auth_token": "", "headers-TOTAL_FORMS": "0", **extra}
    fields.update({field: "", f"{field}{held.SUFFIX}": handle})
    data = add_payload(listener, integration_name="Exfil", new_auth_name="Exfil key", **fields)
    return client.post(reverse("integration-add"), {**data, "action": "test"}, headers=HX)


def test_a_token_handle_from_another_form_sends_nothing(client, bob, upstream, listener):  # noqa: F811
    profile = _profile(upstream, AuthKind.BEARER, token=CANARY)
    client.force_login(bob)
    # Even a handle that was made for the stored value (as the old edit page did) ...
    forged = held.hold(CANARY, bob, f"profile:{profile.pk}", "token")
    response = _exfiltrate_with(client, listener, "new_auth_token", forged)
    assert "Required for this kind of authentication" in response.content.decode()
    assert_never_arrived(listener)
    assert listener.requests == []


def test_a_basic_password_handle_from_another_form_sends_nothing(client, bob, upstream, listener):  # noqa: F811
    profile = _profile(upstream, AuthKind.BASIC, username="alice", password=CANARY)
    client.force_login(bob)
    forged = held.hold(CANARY, bob, f"profile:{profile.pk}", "password")
    _exfiltrate_with(
        client,
        listener,
        "new_auth_password",
        forged,
        new_auth_kind="basic",
        new_auth_username="alice",
    )
    assert_never_arrived(listener)
    assert listener.requests == []


def test_an_oauth_client_secret_handle_does_not_follow_a_foreign_token_url(
    client,
    bob,
    upstream,
    listener,  # noqa: F811
):
    profile = _profile(
        upstream,
        AuthKind.OAUTH2,
        token_url=f"{upstream.url}/token",
        client_id="console",
        client_secret=CANARY,
    )
    client.force_login(bob)
    forged = held.hold(CANARY, bob, f"profile:{profile.pk}", "client_secret")
    # A new profile whose token URL is the listener, with the other profile's handle.
    response = client.post(
        reverse("auth-profile-add"),
        {
            "name": "Mine",
            "kind": "oauth2",
            "token_url": f"{listener.url}/token",
            "client_id": "console",
            "client_secret": "",
            "client_secret__held": forged,
        },
    )
    assert response.status_code == 200
    assert "Required for this kind of authentication" in response.content.decode()
    assert not AuthProfile.objects.filter(name="Mine").exists()
    # And on the Add page, with an inline OAuth profile.
    _exfiltrate_with(
        client,
        listener,
        "new_auth_client_secret",
        forged,
        new_auth_kind="oauth2",
        new_auth_token_url=f"{listener.url}/token",
        new_auth_client_id="console",
    )
    assert_never_arrived(listener)
    assert listener.requests == []


def test_a_handle_is_good_only_for_its_typist_form_and_field(bob, alice):
    handle = held.hold(CANARY, bob, "add", "new_auth_token")
    assert held.take(handle, bob, "add", "new_auth_token") == CANARY
    assert held.take(handle, alice, "add", "new_auth_token") == ""
    assert held.take(handle, bob, "integration:1", "new_auth_token") == ""
    assert held.take(handle, bob, "add", "new_auth_password") == ""
    assert held.take("made-up", bob, "add", "new_auth_token") == ""


def test_a_secret_bob_typed_on_one_page_is_not_held_for_another(client, bob, upstream, listener):  # noqa: F811
    """Bob's own key, typed on a profile page that came back with an error, is held for
    that page only: the Add page does not take it as typed."""
    profile = _profile(upstream, AuthKind.BEARER, token="sk-old-0000000000000000")
    client.force_login(bob)
    html = client.post(
        reverse("auth-profile-edit", args=[profile.pk]),
        {"name": "", "kind": "bearer", "token": CANARY},  # no name: an error re-render
    ).content.decode()
    kept = handles(html)
    assert set(kept) == {"token__held"}
    _exfiltrate_with(client, listener, "new_auth_token", kept["token__held"])
    assert listener.requests == []
    # On its own page the handle is what Bob typed: the fixed form saves it.
    response = client.post(
        reverse("auth-profile-edit", args=[profile.pk]),
        {"name": profile.name, "kind": "bearer", "token": "", **kept},
    )
    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.token == CANARY
