"""An upstream that echoes every secret, in every encoding, on every channel it has.

The key is stored as the README's example does it: a header auth named Authorization
holding "Bearer K", so an upstream that says "Incorrect API key provided: K" echoes
only a part of the stored secret. Every surface a person, a script or a log can see is
then searched, also after decoding, for each secret whole and for any run of it that
holds 64 bits beyond its public prefix (the scrubber's rule: a shorter run may show,
so that masking teaches a caller nothing; see test_scrubber_oracle.py).
"""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import quote, quote_plus, unquote

import pytest
from django.apps import apps
from django.db import connection
from django.urls import reverse

from integrations.models import AuthKind, ConnectionTest
from sandbox.models import SandboxRun
from tests.conftest import CANARY, CANARY_HEADER
from tests.integrations.test_api import Api

SECRETS = (CANARY, CANARY_HEADER)


def encodings(secret: str) -> list[str]:
    return [
        secret,
        f"Incorrect API key provided: {secret}",
        quote(secret, safe=""),
        quote_plus(secret),
        secret.replace("-", "%2D"),
        secret.replace("-", "\\u002d"),
        secret.replace("-", "\\u002D").replace("a", "\\u0061"),
        json.dumps(secret)[1:-1].replace("-", "\\/"),
        secret[:14] + "…",
        base64.b64encode(secret.encode()).decode(),
    ]


ECHO = " | ".join(e for s in SECRETS for e in encodings(s))


# Both canaries end in 20 hex digits after a public "xx-canary-": 64 bits are 16 of them.
RUN = 16


def leaks(text: str) -> list[str]:
    """Return each secret, or run of RUN characters of its body, found in text as sent or
    decoded, and a base64 spelling that holds as much."""
    found = []
    decoded = unquote(text.encode().decode("unicode_escape", "ignore")).replace("\\/", "/")
    for view in (text, decoded):
        for secret in SECRETS:
            body = secret[secret.index("canary-") + 7 :]
            found += [
                body[i : i + RUN] for i in range(len(body) - RUN + 1) if body[i : i + RUN] in view
            ]
            if base64.b64encode(secret.encode()).decode()[:36] in view:
                found.append("base64")
    return found


def echo_handler(mode: str):
    def handle(rec, h):
        if rec.path.endswith("/models"):
            ids = [{"id": e} for s in SECRETS for e in encodings(s)] + [{"id": "real-model"}]
            return send(h, 200, {"object": "list", "data": ids})
        if mode == "redirect":
            h.send_response(302)
            location = f"https://elsewhere.example/?key={quote(CANARY)}&t={quote(ECHO, safe='%')}"
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if mode == "error":
            return send(h, 401, {"error": {"message": ECHO, "type": "invalid_request_error"}})
        body = rec.json()
        if body.get("stream"):
            h.send_response(200)
            h.send_header("Content-Type", "text/event-stream")
            h.end_headers()
            for i in range(0, len(ECHO), 3):
                chunk = {"choices": [{"index": 0, "delta": {"content": ECHO[i : i + 3]}}]}
                h.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            h.wfile.write(f"data: {json.dumps(finish)}\n\ndata: [DONE]\n\n".encode())
            h.close_connection = True
            return
        reply = {
            "id": ECHO,
            "choices": [
                {"message": {"role": "assistant", "content": ECHO}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        }
        send(h, 200, reply)

    return handle


def send(h, status: int, data) -> None:
    # Escaped as a careless server would: "\/" and "\u002d" on the wire.
    payload = json.dumps(data).replace("/", "\\/").encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(payload)))
    h.end_headers()
    h.wfile.write(payload)


@pytest.fixture
def echoing(make_integration, upstream):
    model = make_integration(auth_kind=AuthKind.HEADER, token=f"Bearer {CANARY}")
    profile = model.integration.auth_profile
    profile.header_name = "Authorization"
    profile.save()
    return model


def body_of(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


@pytest.mark.parametrize("mode", ["ok", "error", "redirect"])
def test_no_role_sees_an_echoed_secret_anywhere(
    mode, client, users, api_token, echoing, upstream, caplog
):
    caplog.set_level(logging.DEBUG)
    upstream.handler = echo_handler(mode)
    model = echoing
    seen: dict[str, str] = {}
    for role, user in users.items():
        client.force_login(user)
        run = {"model": str(model.pk), "user_prompt": "hi", "max_tokens": "20"}
        seen[f"{role} run"] = body_of(client.post(reverse("sandbox-run-now"), run))
        seen[f"{role} stream"] = body_of(
            client.post(reverse("sandbox-stream"), {**run, "stream": "on"})
        )
        seen[f"{role} history"] = body_of(client.get(reverse("sandbox-history")))
        for saved in SandboxRun.objects.all():
            seen[f"{role} run page"] = body_of(client.get(reverse("sandbox-run", args=[saved.pk])))
        api = Api(client, api_token(user))
        status, answer = api.call("post", "chat", {"model": str(model.pk), "user": "hi"})
        seen[f"{role} chat api"] = json.dumps(answer)
        if role != "member":
            seen[f"{role} test now"] = body_of(
                client.post(reverse("model-test", args=[model.pk]), headers={"HX-Request": "true"})
            )
            seen[f"{role} api test"] = json.dumps(api.call("post", f"llms/{model.pk}/test")[1])
            seen[f"{role} fetch models"] = body_of(
                client.get(reverse("fetch-models", args=[model.integration.pk]))
            )
            detail = reverse("integration-detail", args=[model.integration.pk])
            seen[f"{role} detail"] = body_of(client.get(detail))
            for test in ConnectionTest.objects.all():
                seen[f"{role} test record"] = body_of(
                    client.get(reverse("connection-test", args=[test.pk]))
                )
        if role == "admin":
            seen["audit"] = body_of(client.get(reverse("audit")))
    assert upstream.requests, "the echo upstream was called"
    for where, text in seen.items():
        assert not leaks(text), f"a secret leaked into {where}: {leaks(text)}"
    for record in caplog.records:
        assert not leaks(record.getMessage() + str(record.__dict__)), "a secret reached a log"
    # Rows as stored (the ORM would decrypt the encrypted fields on the way out).
    with connection.cursor() as cursor:
        for model_class in [*apps.get_app_config("integrations").get_models(), SandboxRun]:
            cursor.execute(f"SELECT * FROM {model_class._meta.db_table}")
            rendered = json.dumps(cursor.fetchall(), default=str)
            assert not leaks(rendered), f"a secret was stored in {model_class.__name__}"


def test_fetch_models_lists_no_id_that_echoes_a_secret(client, bob, echoing, upstream):
    upstream.handler = echo_handler("ok")
    client.force_login(bob)
    html = body_of(client.get(reverse("fetch-models", args=[echoing.integration.pk])))
    assert "real-model" in html and not leaks(html)
