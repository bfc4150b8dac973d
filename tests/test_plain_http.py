"""A production console reached over plain HTTP: pages redirect to HTTPS, while API and
gateway calls are told why in their own error shape (an SDK does not follow a redirected
POST and showed only "Connection error")."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def https_only(settings):
    settings.SECURE_SSL_REDIRECT = True


def test_pages_redirect_and_calls_get_a_clear_403(client, https_only):
    assert client.get("/login/").status_code == 301
    chat = client.post("/v1/chat/completions", "{}", content_type="application/json")
    assert chat.status_code == 403
    error = chat.json()["error"]
    assert (
        error["code"] == "https_required"
        and "https://testserver/v1/chat/completions" in error["message"]
    )
    messages = client.post("/v1/messages", "{}", content_type="application/json")
    assert messages.status_code == 403 and messages.json()["type"] == "error"
    api = client.get("/api/v2/llms")
    assert api.status_code == 403 and "X-Forwarded-Proto" in api.json()["detail"]


def test_behind_a_tls_proxy_calls_pass(client, https_only, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    answer = client.post("/v1/chat/completions", "{}", content_type="application/json",
                         HTTP_X_FORWARDED_PROTO="https")  # fmt: skip
    assert answer.status_code == 401  # on to the gateway, which wants a key


def test_the_security_middleware_is_in_both_chains(settings):
    from django.middleware.security import SecurityMiddleware
    from django.utils.module_loading import import_string

    for chain in (settings.MIDDLEWARE, settings.GATEWAY_MIDDLEWARE):
        assert any(issubclass(c, SecurityMiddleware) for c in map(import_string, chain)
                   if isinstance(c, type))  # fmt: skip
