"""Small copy that used to say the wrong thing."""

from __future__ import annotations

from datetime import timedelta

from django.template import Context, Template
from django.utils import timezone


def test_the_new_auth_profile_page_is_titled_new(client, bob):
    client.force_login(bob)
    html = client.get("/auth-profiles/new").content.decode()
    assert "<title>New auth profile" in html and "Edit auth profile" not in html


def test_an_admin_only_page_says_it_is_for_admins(client, bob):
    client.force_login(bob)
    response = client.get("/team/users/")
    assert response.status_code == 403
    html = response.content.decode()
    assert "Only Admins" in html
    assert "Editors and Admins can change" not in html


def test_an_editor_only_page_says_who_may_change_it(client, charlie):
    client.force_login(charlie)
    response = client.get("/auth-profiles/new")
    assert response.status_code == 403
    assert "Editors and Admins can change" in response.content.decode()


def test_a_moment_ago_reads_just_now():
    template = Template("{{ a|ago }}|{{ b|ago }}")
    now = timezone.now()
    text = template.render(Context({"a": now, "b": now - timedelta(hours=3)}))
    assert text == "just now|3\xa0hours ago"
