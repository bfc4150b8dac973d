"""A route is picked in the Sandbox like a model: it fails over as in the gateway, and
the run is the answering target's, with the route and each attempt on it."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from integrations import callcache
from integrations.gateway import cooldowns
from integrations.models import CustomModel, Integration, Route, RouteTarget
from sandbox.models import SandboxRun
from tests.gateway.failover import closed_port
from tests.sandbox.test_sandbox_views import HX, sse_events
from tests.upstream import reply_sse

pytestmark = pytest.mark.django_db


@pytest.fixture
def route(make_integration):
    cooldowns.forget_all()
    good = make_integration(name="Good")
    dead = Integration.objects.create(
        name="Dead", endpoint=f"http://127.0.0.1:{closed_port()}/v1", timeout_seconds=2
    )
    dead_model = CustomModel.objects.create(integration=dead, name="Dead model", model_id="x")
    route = Route.objects.create(name="helpdesk", retry_same=[], move_on=["refused", "connection"])
    RouteTarget.objects.create(route=route, model=dead_model, position=0)
    RouteTarget.objects.create(route=route, model=good, position=1)
    callcache.bump()
    yield route
    cooldowns.forget_all()


def _post(route, **extra) -> dict:
    return {"model": f"route:{route.pk}", "user_prompt": "Say hi", **extra}


def test_the_picker_offers_routes_beside_models(client, charlie, route):
    client.force_login(charlie)
    html = client.get(reverse("sandbox")).content.decode()
    assert f'value="route:{route.pk}"' in html and "helpdesk (route)" in html


@pytest.mark.parametrize("role", ["admin", "editor", "member"])
def test_a_route_run_fails_over_and_records_the_answering_target(client, users, route, role):
    client.force_login(users[role])
    response = client.post(reverse("sandbox-run-now"), _post(route), headers=HX)
    html = response.content.decode()
    assert response.status_code == 200 and "pong" in html
    assert "via route helpdesk, 1 failed attempt" in html
    run = SandboxRun.objects.get()
    assert run.status == "ok" and run.integration_name == "Good"
    assert run.route_id == route.pk and run.route_name == "helpdesk"
    assert [(a["model"], a["ok"]) for a in run.attempts] == [
        ("Dead/Dead model", False),
        (f"Good/{run.model_name}", True),
    ]
    assert run.cost == run.model.cost(run.prompt_tokens, run.completion_tokens)


def test_a_route_streams_in_the_sandbox_after_failing_over(client, charlie, route, upstream):
    upstream.handler = reply_sse(["Hel", "lo"])
    client.force_login(charlie)
    events = sse_events(client.post(reverse("sandbox-stream"), _post(route, stream="on")))
    assert events[0] == ("start", {"model": "helpdesk", "column": 0})
    assert "".join(e[1]["t"] for e in events if e[0] == "token") == "Hello"
    assert events[-1][0] == "done" and "via route helpdesk" in events[-1][1]["html"]
    run = SandboxRun.objects.get()
    assert run.status == "ok" and run.reply == "Hello" and run.route_name == "helpdesk"
    assert run.integration_name == "Good"


def test_a_route_run_opens_again_with_the_route_picked(client, charlie, route):
    client.force_login(charlie)
    client.post(reverse("sandbox-run-now"), _post(route), headers=HX)
    run = SandboxRun.objects.get()
    html = client.get(reverse("sandbox"), {"run": str(run.pk)}).content.decode()
    assert f'<option value="route:{route.pk}" selected>' in html
    response = client.post(reverse("sandbox-rerun", args=[run.pk]))
    assert response.status_code == 302
    again = SandboxRun.objects.exclude(pk=run.pk).get()
    assert again.route_id == route.pk and again.status == "ok"


def test_a_disabled_route_is_refused_next_to_the_picker(client, charlie, route):
    Route.objects.filter(pk=route.pk).update(enabled=False)
    client.force_login(charlie)
    html = client.post(reverse("sandbox-run-now"), _post(route), headers=HX).content.decode()
    assert "That route is not available" in html
    assert not SandboxRun.objects.exists()


def test_a_garbled_pick_is_a_field_error_not_a_500(client, charlie, route):
    client.force_login(charlie)
    response = client.post(reverse("sandbox-run-now"), _post(route, model="route:nope"))
    assert response.status_code == 200 and "Choose a model or a route." in response.content.decode()


def test_the_chat_api_takes_a_route_and_names_the_target_that_answered(
    client, charlie, api_token, route
):
    from tests.integrations.test_api import Api

    api = Api(client, api_token(charlie))
    status, body = api.call("post", "chat", {"route": str(route.pk), "user": "hi"})
    assert status == 200, body
    assert body["reply"] == "pong" and body["route"] == "helpdesk"
    assert [a["ok"] for a in body["attempts"]] == [False, True]
    run = SandboxRun.objects.get()
    assert str(run.pk) == body["run_id"] and run.route_id == route.pk


@pytest.mark.parametrize(
    "sent", [{}, {"model": "00000000-0000-0000-0000-000000000000", "route": "ROUTE"}]
)
def test_the_chat_api_wants_exactly_one_of_model_and_route(client, charlie, api_token, route, sent):
    from tests.integrations.test_api import Api

    api = Api(client, api_token(charlie))
    sent = {k: (str(route.pk) if v == "ROUTE" else v) for k, v in sent.items()}
    status, body = api.call("post", "chat", sent | {"user": "hi"})
    assert status == 422 and "either model or route" in json.dumps(body)
    assert not SandboxRun.objects.exists()
