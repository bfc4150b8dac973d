"""Every URL × every kind of caller, generated from the URL conf and the API schema.

A view added without an entry in PAGES or API fails `test_every_view_is_classified`,
so no page or endpoint can ship without someone deciding who may use it.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from integrations.models import ApiToken

PUBLIC, LOGIN, EDITOR, ADMIN = "public", "login", "editor", "admin"

# url name: (method, who may use it)
PAGES = {
    "healthz": ("get", PUBLIC),
    "login": ("get", PUBLIC),
    "logout": ("post", PUBLIC),
    "password_reset": ("get", PUBLIC),
    "password_reset_done": ("get", PUBLIC),
    "password_reset_confirm": ("get", PUBLIC),
    "password_reset_complete": ("get", PUBLIC),
    "demo-chat": ("post", PUBLIC),
    "demo-models": ("get", PUBLIC),
    "home": ("get", LOGIN),
    "integration-detail": ("get", LOGIN),
    "connection-test": ("get", LOGIN),
    "auth-profiles": ("get", LOGIN),
    "sandbox": ("get", LOGIN),
    "sandbox-run-now": ("post", LOGIN),
    "sandbox-stream": ("post", LOGIN),
    "sandbox-stop": ("post", LOGIN),
    "sandbox-history": ("get", LOGIN),
    "sandbox-embeddings": ("get", LOGIN),
    "sandbox-run": ("get", LOGIN),
    "sandbox-rerun": ("post", LOGIN),
    "sandbox-column": ("get", LOGIN),
    "sandbox-prompt-save": ("post", LOGIN),
    "sandbox-prompt-delete": ("post", LOGIN),
    "prompt-detail": ("get", LOGIN),
    "prompt-label": ("post", EDITOR),
    "datasets": ("get", LOGIN),
    "dataset-upload": ("get", EDITOR),
    "dataset-detail": ("get", LOGIN),
    "dataset-export": ("get", LOGIN),
    "dataset-edit": ("get", EDITOR),
    "dataset-add-run": ("post", EDITOR),
    "experiments": ("get", LOGIN),
    "experiment-new": ("get", LOGIN),
    "experiment-detail": ("get", LOGIN),
    "experiment-cancel": ("post", LOGIN),
    "experiment-export": ("get", LOGIN),
    "experiment-compare": ("get", LOGIN),
    "experiment-review": ("get", LOGIN),
    "api-tokens": ("get", LOGIN),
    "api-token-revoke": ("post", LOGIN),
    "model-test": ("post", EDITOR),
    "model-toggle": ("post", EDITOR),
    "model-edit": ("get", EDITOR),
    "model-delete": ("get", EDITOR),
    "integration-add": ("get", EDITOR),
    "endpoint-preview": ("get", EDITOR),
    "integration-edit": ("get", EDITOR),
    "integration-delete": ("get", EDITOR),
    "model-add": ("get", EDITOR),
    "fetch-models": ("get", EDITOR),
    "fetch-models-add": ("post", EDITOR),
    "auth-profile-add": ("get", EDITOR),
    "auth-profile-edit": ("get", EDITOR),
    "auth-profile-delete": ("get", EDITOR),
    "team-users": ("get", ADMIN),
    "team-user-role": ("post", ADMIN),
    "team-user-active": ("post", ADMIN),
    "team-user-link": ("post", ADMIN),
    "audit": ("get", ADMIN),
    "alerts": ("get", ADMIN),
    "alert-edit": ("get", ADMIN),
    "alert-delete": ("get", ADMIN),
    "alert-try": ("post", ADMIN),
    "metrics": ("get", PUBLIC),
    "favicon": ("get", PUBLIC),  # its own bearer token (tests/telemetry)
    "export-import": ("get", ADMIN),
    "routes": ("get", LOGIN),
    "route-detail": ("get", LOGIN),
    "route-add": ("get", EDITOR),
    "route-edit": ("get", EDITOR),
    "route-delete": ("get", EDITOR),
    "gateway-keys": ("get", EDITOR),
    "gateway-key-revoke": ("get", EDITOR),
    "gateway-key-edit": ("get", EDITOR),
    "usage": ("get", LOGIN),
    "usage-csv": ("get", LOGIN),
    # The gateway authenticates with its own keys (tests/gateway).
    "gateway-chat": ("post", PUBLIC),
    "gateway-models": ("get", PUBLIC),
    "gateway-openapi": ("get", PUBLIC),
    "gateway-model": ("get", PUBLIC),
    "gateway-messages": ("post", PUBLIC),
    "gateway-count-tokens": ("post", PUBLIC),
    "gateway-responses": ("post", PUBLIC),
    "gateway-response": ("get", PUBLIC),
    "gateway-embeddings": ("post", PUBLIC),
}
# (method, path): who may call it with a token
API = {
    ("post", "/api/v2/llms"): EDITOR,
    ("get", "/api/v2/llms"): LOGIN,
    ("get", "/api/v2/llms/{llm_id}"): LOGIN,
    ("patch", "/api/v2/llms/{llm_id}"): EDITOR,
    ("delete", "/api/v2/llms/{llm_id}"): EDITOR,
    ("post", "/api/v2/llms/{llm_id}/test"): EDITOR,
    ("post", "/api/v2/secrets"): EDITOR,
    ("get", "/api/v2/secrets"): EDITOR,
    ("delete", "/api/v2/secrets/{secret_id}"): EDITOR,
    ("patch", "/api/v2/secrets/{secret_id}"): EDITOR,
    ("get", "/api/v2/auth-profiles"): LOGIN,
    ("post", "/api/v2/auth-profiles"): EDITOR,
    ("delete", "/api/v2/auth-profiles/{profile_id}"): EDITOR,
    ("get", "/api/v2/gateway-keys"): EDITOR,
    ("post", "/api/v2/gateway-keys"): EDITOR,
    ("delete", "/api/v2/gateway-keys/{key_id}"): EDITOR,
    ("post", "/api/v2/chat"): LOGIN,
    ("post", "/api/v2/datasets"): EDITOR,
    ("post", "/api/v2/experiments"): LOGIN,
    ("get", "/api/v2/experiments/{experiment_id}"): LOGIN,
    ("get", "/api/v2/experiments/{experiment_id}/results"): LOGIN,
    ("post", "/api/v2/integrations"): EDITOR,
    ("get", "/api/v2/integrations"): LOGIN,
    ("get", "/api/v2/integrations/{integration_id}"): LOGIN,
    ("patch", "/api/v2/integrations/{integration_id}"): EDITOR,
    ("delete", "/api/v2/integrations/{integration_id}"): EDITOR,
    ("post", "/api/v2/integrations/{integration_id}/models"): EDITOR,
    ("post", "/api/v2/llm_configurations"): EDITOR,
    ("get", "/api/v2/routes"): LOGIN,
    ("post", "/api/v2/routes"): EDITOR,
    ("get", "/api/v2/routes/{route_id}"): LOGIN,
    ("put", "/api/v2/routes/{route_id}"): EDITOR,
    ("delete", "/api/v2/routes/{route_id}"): EDITOR,
}
ALLOWED = {
    PUBLIC: {"admin", "editor", "member", "anonymous", "deactivated"},
    LOGIN: {"admin", "editor", "member"},
    EDITOR: {"admin", "editor"},
    ADMIN: {"admin"},
}


def url_names(resolver=None, namespace="") -> list[str]:
    names = []
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace in ("admin", "api"):
                continue  # the Django admin has its own staff checks; the API is below
            names += url_names(pattern)
        elif isinstance(pattern, URLPattern) and pattern.name:
            names.append(pattern.name)
    return names


def test_every_view_is_classified():
    unclassified = sorted(set(url_names()) - set(PAGES))
    assert not unclassified, f"views without an access rule in PAGES: {unclassified}"
    from config.api import api

    schema = api.get_openapi_schema()
    operations = {(m, p) for p, ops in schema["paths"].items() for m in ops}
    assert operations == set(API), f"API operations not classified: {operations ^ set(API)}"


def args_for(name: str, o: dict) -> list:
    by_name = {
        "integration-detail": [o["integration"].pk],
        "integration-edit": [o["integration"].pk],
        "integration-delete": [o["integration"].pk],
        "model-add": [o["integration"].pk],
        "fetch-models": [o["integration"].pk],
        "fetch-models-add": [o["integration"].pk],
        "model-test": [o["model"].pk],
        "model-toggle": [o["model"].pk],
        "model-edit": [o["model"].pk],
        "model-delete": [o["model"].pk],
        "connection-test": [o["test"].pk],
        "auth-profile-edit": [o["profile"].pk],
        "auth-profile-delete": [o["profile"].pk],
        "sandbox-run": [o["run"].pk],
        "sandbox-rerun": [o["run"].pk],
        "sandbox-prompt-delete": [o["prompt"].pk],
        "prompt-detail": [o["prompt"].pk],
        "prompt-label": [o["prompt"].pk],
        "dataset-detail": [o["dataset"].pk],
        "dataset-export": [o["dataset"].pk],
        "dataset-edit": [o["dataset"].pk],
        "experiment-detail": [o["experiment"].pk],
        "experiment-cancel": [o["experiment"].pk],
        "experiment-export": [o["experiment"].pk],
        "experiment-compare": [o["experiment"].pk],
        "experiment-review": [o["experiment"].pk],
        "gateway-key-revoke": [o["gateway_key"].pk],
        "gateway-key-edit": [o["gateway_key"].pk],
        "alert-edit": [o["alert"].pk],
        "alert-delete": [o["alert"].pk],
        "alert-try": [o["alert"].pk],
        "route-detail": [o["route"].pk],
        "route-edit": [o["route"].pk],
        "route-delete": [o["route"].pk],
        "gateway-model": ["Model A"],
        "gateway-response": ["resp_none"],
        "api-token-revoke": [o["token"].pk],
        "team-user-role": ["target"],
        "team-user-active": ["target"],
        "team-user-link": ["target"],
        "password_reset_confirm": ["MQ", "set-password"],
    }
    return by_name.get(name, [])


@pytest.mark.parametrize("role", ["admin", "editor", "member", "anonymous", "deactivated"])
def test_pages_answer_each_role_as_the_matrix_says(client, users, objects, role, settings):
    settings.SANDBOX_RATE_LIMIT = (1000, 60)
    if role == "deactivated":
        user = get_user_model().objects.create_user("gone", password="pw-gone-123")
        client.force_login(user)
        user.is_active = False
        user.save()
    elif role != "anonymous":
        client.force_login(users[role])
    for name, (method, level) in PAGES.items():
        if name == "logout":
            continue  # it would end the session the rest of the loop needs
        url = reverse(name, args=args_for(name, objects))
        data = {"role": "Member"} if name == "team-user-role" else {}
        response = getattr(client, method)(url, data)
        allowed = role in ALLOWED[level]
        went_to_login = response.status_code == 302 and "/login/" in response.get("Location", "")
        if allowed:
            assert (
                response.status_code < 500 and response.status_code != 403 and not went_to_login
            ), (name, role, response.status_code)
        elif role in ("anonymous", "deactivated"):
            assert went_to_login, (name, role, response.status_code)
        else:
            assert response.status_code == 403, (name, role, response.status_code)


def api_body(method: str, path: str, upstream, o: dict) -> dict | None:
    if (method, path) == ("post", "/api/v2/llms"):
        return {
            "type": "openai-compatible",
            "name": "New",
            "model": "m",
            "uri": f"{upstream.url}/v1",
        }
    if (method, path) == ("patch", "/api/v2/llms/{llm_id}"):
        return {"description": "x"}
    if (method, path) == ("patch", "/api/v2/secrets/{secret_id}"):
        return {"secret_value": "v2"}
    if (method, path) == ("post", "/api/v2/secrets"):
        return {"secret_name": "s", "secret_value": "v"}
    if (method, path) == ("post", "/api/v2/auth-profiles"):
        return {"name": "p", "type": "bearer", "token": "t"}
    if (method, path) == ("post", "/api/v2/gateway-keys"):
        return {"name": "app", "models": [str(o["model"].pk)], "rpm": 10}
    if method in ("post", "put") and path.startswith("/api/v2/routes"):
        return {"name": f"matrix-{method}", "targets": [{"model": str(o["model"].pk)}]}
    if (method, path) == ("post", "/api/v2/chat"):
        return {"model": str(o["model"].pk), "user": "hi"}
    if (method, path) == ("post", "/api/v2/datasets"):
        import uuid

        return {"name": f"matrix-{uuid.uuid4().hex[:6]}", "content": "word,expected\na,A\n"}
    if (method, path) == ("post", "/api/v2/experiments"):
        return {"name": "matrix", "dataset_id": str(o["dataset"].pk), "user": "Say {{word}}",
                "targets": [{"model": str(o["model"].pk)}], "scorers": [{"kind": "exact"}]}  # fmt: skip
    if (method, path) == ("post", "/api/v2/integrations"):
        return {
            "name": "Made",
            "endpoint": f"{upstream.url}/v1",
            "models": [{"name": "m", "model_id": "m"}],
        }
    if (method, path) == ("patch", "/api/v2/integrations/{integration_id}"):
        return {"description": "x"}
    if (method, path) == ("post", "/api/v2/integrations/{integration_id}/models"):
        return {"name": "second", "model_id": "m2"}
    if (method, path) == ("post", "/api/v2/llm_configurations"):
        from integrations.models import StoredSecret

        secret = StoredSecret.objects.get(name="matrix secret")
        return {"display_name": "LA", "model_name": "m", "secret_id": str(secret.pk)}
    return None


@pytest.mark.parametrize("caller", ["admin", "editor", "member", "none", "revoked", "deactivated"])
def test_the_api_answers_each_caller_as_the_matrix_says(
    client, users, objects, upstream, caller, settings
):
    import json

    from integrations.team import tokens

    settings.SANDBOX_RATE_LIMIT = (1000, 60)
    raw = None
    if caller in ("admin", "editor", "member"):
        raw = tokens.create(users[caller], "matrix")[1]
    elif caller == "revoked":
        token, raw = tokens.create(users["editor"], "old")
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    elif caller == "deactivated":
        user = get_user_model().objects.create_user("gone-api", password="pw")
        raw = tokens.create(user, "t")[1]
        user.is_active = False
        user.save()
    headers = {"Authorization": f"Bearer {raw}"} if raw else {}
    # Deletes last, so the objects they remove exist for the other calls.
    for (method, path), level in sorted(API.items(), key=lambda item: item[0][0] == "delete"):
        from integrations.models import StoredSecret

        secret = StoredSecret.objects.get_or_create(name="matrix secret", defaults={"value": "v"})[
            0
        ]
        url = path.format(
            llm_id=objects["model"].pk,
            secret_id=secret.pk,
            profile_id=objects["profile"].pk,
            integration_id=objects["model"].integration_id,
            key_id=objects["gateway_key"].pk,
            route_id=objects["route"].pk,
            experiment_id=objects["experiment"].pk,
        )
        body = api_body(method, path, upstream, objects)
        response = getattr(client, method)(
            url,
            data=json.dumps(body) if body is not None else None,
            content_type="application/json",
            headers=headers,
        )
        assert response["Content-Type"].startswith("application/json"), (method, path)
        if caller in ("none", "revoked", "deactivated"):
            assert response.status_code == 401, (method, path, caller, response.status_code)
        elif caller in ALLOWED[level]:
            assert response.status_code not in (401, 403) and response.status_code < 500, (
                method,
                path,
                caller,
                response.content,
            )
        else:
            assert response.status_code == 403, (method, path, caller, response.status_code)
