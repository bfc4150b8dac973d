"""Routes through the console and the REST API: Test then Save (saved only when a main
target passes; a failing target is marked), the one form's messages, and who may change one."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from integrations.models import ConnectionTest, Route
from integrations.team import tokens
from tests.upstream import reply_json

pytestmark = pytest.mark.django_db


def page_body(name: str, *targets, strategy: str = "priority") -> dict:
    body = {
        "name": name,
        "strategy": strategy,
        "attempts_per_target": 1,
        "deadline_seconds": 30,
        "failures_to_cool": 3,
        "failure_window_seconds": 60,
        "cooldown_seconds": 30,
        "enabled": "on",
        "retry_same": ["connection", "timeout"],
        "move_on": ["server_error", "rate_limited", "timeout", "connection"],
    }
    for order, (model, role) in enumerate(targets):
        body[f"role-{model.pk}"] = role
        body[f"order-{model.pk}"] = str(order + 1)
        body[f"weight-{model.pk}"] = "1"
    return body


def test_an_editor_saves_a_route_once_a_target_passes_its_test(client, users, make_integration):
    good = make_integration()
    client.force_login(users["editor"])
    response = client.post(reverse("route-add"), page_body("steady-chat", (good, "main")))
    assert response.status_code == 302, response.content.decode()[-2000:]
    route = Route.objects.get(name="steady-chat")
    assert [t.model_id for t in route.targets.all()] == [good.pk]
    assert route.targets.get().last_test_ok is True
    assert ConnectionTest.objects.filter(integration=good.integration, ok=True).exists()
    page = client.get(reverse("route-detail", args=[route.pk])).content.decode()
    assert "steady-chat" in page and good.name in page


def test_no_passing_target_means_nothing_is_saved_and_the_failure_is_named(
    client, users, make_integration, upstream
):
    model = make_integration()
    upstream.handler = reply_json({"error": {"message": "down"}}, status=503)
    client.force_login(users["editor"])
    response = client.post(reverse("route-add"), page_body("down-chat", (model, "main")))
    assert response.status_code == 200
    assert not Route.objects.filter(name="down-chat").exists()
    page = response.content.decode()
    assert model.name in page and "503" in page


def test_a_fallback_alone_is_refused_next_to_the_targets(client, users, make_integration):
    model = make_integration()
    client.force_login(users["editor"])
    response = client.post(reverse("route-add"), page_body("only-backup", (model, "context")))
    assert response.status_code == 200
    assert "at least one target" in response.content.decode()
    assert not Route.objects.exists()


def test_a_member_reads_routes_but_cannot_change_one(client, users, objects):
    client.force_login(users["member"])
    assert client.get(reverse("routes")).status_code == 200
    assert client.get(reverse("route-detail", args=[objects["route"].pk])).status_code == 200
    body = page_body("mine", (objects["model"], "main"))
    assert client.post(reverse("route-add"), body).status_code == 403
    assert client.post(reverse("route-delete", args=[objects["route"].pk])).status_code == 403
    assert Route.objects.count() == 1


def test_the_api_creates_a_route_through_the_same_test_and_answers_409_when_none_pass(
    client, users, make_integration, upstream
):
    model = make_integration()
    raw = tokens.create(users["editor"], "ci")[1]
    headers = {"Authorization": f"Bearer {raw}"}

    def post(name):
        body = {"name": name, "targets": [{"model": str(model.pk)}]}
        return client.post(
            "/api/v2/routes", json.dumps(body), content_type="application/json", headers=headers
        )

    made = post("api-chat")
    assert made.status_code == 201, made.content
    assert made.json()["targets"][0]["last_test_ok"] is True
    upstream.handler = reply_json({"error": {"message": "down"}}, status=503)
    refused = post("api-down")
    assert refused.status_code == 409, refused.content
    assert not Route.objects.filter(name="api-down").exists()
    unknown = client.post(
        "/api/v2/routes",
        json.dumps({"name": "x", "targets": [{"model": "no-such-model"}]}),
        content_type="application/json",
        headers=headers,
    )
    assert unknown.status_code == 422, unknown.content


def test_a_gateway_key_is_scoped_to_a_route_on_the_page_and_in_the_api(client, users, objects):
    from integrations.models import GatewayKey

    route = objects["route"]
    client.force_login(users["editor"])
    response = client.post(
        reverse("gateway-keys"),
        {"name": "route-only", "owner": users["editor"].pk, "routes": [route.pk]},
    )
    assert response.status_code in (200, 302), response.content.decode()[-1500:]
    key = GatewayKey.objects.get(name="route-only")
    assert not key.all_models and list(key.routes.all()) == [route]
    assert "route Steady" in client.get(reverse("gateway-keys")).content.decode()
    raw = tokens.create(users["editor"], "ci")[1]
    made = client.post(
        "/api/v2/gateway-keys",
        json.dumps({"name": "api-route", "models": [], "routes": [str(route.pk)]}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert made.status_code == 201, made.content
    assert made.json()["routes"] == [str(route.pk)] and made.json()["models"] == []
    bad = client.post(
        "/api/v2/gateway-keys",
        json.dumps({"name": "x", "models": [], "routes": ["nope"]}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert bad.status_code == 422
