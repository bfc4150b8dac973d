"""The console under ASGI, as production serves it (gunicorn with uvicorn workers): pages,
static files and the Sandbox's event stream, which Django would otherwise read whole
before sending, and which must still close its upstream call when the browser leaves.
The gateway's own tests run under both servers (tests/gateway)."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.test import Client

from sandbox.models import SandboxRun
from tests.upstream import reply_sse

pytestmark = pytest.mark.django_db(transaction=True)

CSRF = "c" * 32  # a CSRF secret the test chooses: the cookie and the header carry it


def signed_in(server, user) -> httpx.Client:
    django_client = Client()
    django_client.force_login(user)
    cookies = {"sessionid": django_client.cookies["sessionid"].value, "csrftoken": CSRF}
    return httpx.Client(
        base_url=server.url, cookies=cookies, headers={"X-CSRFToken": CSRF}, timeout=20
    )


def stream_form(model) -> dict:
    return {"model": str(model.pk), "user_prompt": "Say hi", "stream": "on"}


def test_a_sandbox_stream_arrives_token_by_token(asgi_server, charlie, make_integration, upstream):
    upstream.handler = reply_sse([f"w{i} " for i in range(6)], delay=0.25)
    model = make_integration()
    arrivals: list[tuple[float, str]] = []
    started = time.monotonic()
    browser = signed_in(asgi_server, charlie)
    with browser.stream("POST", "/sandbox/stream", data=stream_form(model)) as response:
        assert response.headers["content-type"] == "text/event-stream"
        for line in response.iter_lines():
            if line.startswith("event: "):
                arrivals.append((time.monotonic() - started, line[7:]))
    names = [name for _, name in arrivals]
    assert names[0] == "start" and names[-1] == "done" and "token" in names
    first_token = next(at for at, name in arrivals if name == "token")
    # Six words 0.25 s apart: a reply read whole first would arrive all at once at the end.
    assert arrivals[-1][0] - first_token > 0.8
    run = SandboxRun.objects.get()
    assert run.status == "ok" and run.reply == "".join(f"w{i} " for i in range(6))


def test_leaving_a_sandbox_stream_closes_the_upstream_and_keeps_the_run(
    asgi_server, charlie, make_integration, upstream
):
    upstream.handler = reply_sse([f"w{i} " for i in range(200)], delay=0.05)
    model = make_integration()
    browser = signed_in(asgi_server, charlie)
    with browser.stream("POST", "/sandbox/stream", data=stream_form(model)) as response:
        for line in response.iter_lines():
            if line.startswith("event: token"):
                break
    browser.close()
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        run = SandboxRun.objects.first()
        if run and run.status != "running" and upstream.requests[0].finished:
            break
        time.sleep(0.05)
    assert upstream.requests[0].finished  # the upstream saw its connection close
    assert time.monotonic() - upstream.requests[0].started < 8  # long before its 10 s
    run = SandboxRun.objects.get()
    assert run.status == "stopped" and run.reply.startswith("w0")


def test_pages_static_files_and_api_errors_answer_as_under_wsgi(asgi_server, charlie):
    css = (Path(settings.BASE_DIR) / "static/css/app.css").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Django warns when it must read a stream whole
        with signed_in(asgi_server, charlie) as browser:
            static = browser.get("/static/css/app.css")
            assert static.status_code == 200 and static.content == css
            page = browser.get("/sandbox/")
            assert page.status_code == 200 and "Content-Security-Policy" in page.headers
            missing = browser.get("/api/v2/no-such-thing")
            assert missing.status_code == 404
            assert missing.json()["message"].startswith("Not found")
            gateway = httpx.get(f"{asgi_server.url}/v1/nope")
            assert gateway.json()["error"]["code"] == "unknown_url"
            assert json.loads(httpx.get(f"{asgi_server.url}/healthz").text)


def test_a_gateway_caller_who_leaves_before_the_first_token_is_metered(
    asgi_server, make_integration, bob, upstream
):
    from integrations.gateway import keys
    from integrations.models import UsageRecord
    from tests.upstream import reply_slow_headers

    make_integration(price_input_per_mtok="1", price_output_per_mtok="1")
    upstream.handler = reply_slow_headers(3)
    _, raw = keys.create(bob, "app")
    body = {"model": "Model A", "messages": [{"role": "user", "content": "x"}], "stream": True}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{asgi_server.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {raw}"},
            json=body,
            timeout=httpx.Timeout(10, read=0.5),
        )
    deadline = time.monotonic() + 2  # well before the upstream's 3 s
    while time.monotonic() < deadline and not UsageRecord.objects.exists():
        time.sleep(0.05)
    row = UsageRecord.objects.get()
    assert not row.ok and row.error_kind == "connection" and row.streamed
    assert row.latency_ms < 2000


def test_gateway_calls_give_every_database_connection_back(
    asgi_server, make_integration, bob, upstream
):
    from django.db import connection

    from integrations.gateway import keys
    from tests.upstream import reply_load

    if connection.vendor != "postgresql":
        pytest.skip("the connection pool is PostgreSQL's (CI runs this on PostgreSQL)")
    make_integration()
    upstream.handler = reply_load(tokens=3)
    _, raw = keys.create(bob, "app")
    gateway = httpx.Client(
        base_url=f"{asgi_server.url}/v1", headers={"Authorization": f"Bearer {raw}"}, timeout=20
    )
    body = {"model": "Model A", "messages": [{"role": "user", "content": "x"}]}
    for _ in range(12):  # more calls than the pool has connections
        assert gateway.post("/chat/completions", json=body).status_code == 200
        with gateway.stream("POST", "/chat/completions", json={**body, "stream": True}) as r:
            assert r.status_code == 200 and list(r.iter_lines())
    # The last rows are written as the response closes: on a busy machine that takes a
    # moment, after which every connection but the test's own is back.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stats = connection.pool.get_stats()
        if stats["pool_size"] - stats["pool_available"] <= 1:
            break
        time.sleep(0.1)
    assert stats["pool_size"] - stats["pool_available"] <= 1  # only the test's own


def test_a_body_in_many_messages_a_unicode_path_and_the_callers_address_reach_the_view(
    asgi_server, charlie, make_integration, upstream
):
    from integrations.models import AuditEvent
    from tests.upstream import openai_reply, reply_json

    upstream.handler = reply_json(openai_reply("read it all"))
    model = make_integration()
    browser = signed_in(asgi_server, charlie)
    long = "é" * 90_000  # 180 KB as UTF-8: uvicorn hands it over in several messages
    answer = browser.post("/sandbox/run", data={"model": str(model.pk), "user_prompt": long})
    assert answer.status_code == 200 and "read it all" in answer.text
    assert upstream.requests[-1].json()["messages"][-1]["content"] == long
    assert SandboxRun.objects.get().user_prompt == long
    found = browser.get("/sandbox/history/", params={"model": "Modèl ✓"})
    assert found.status_code == 200 and "Modèl ✓" in found.text
    assert browser.get("/nö-such-päge/").status_code == 404
    head = browser.head("/static/css/app.css")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"])
    event = AuditEvent.objects.filter(action="sandbox_run").latest("created_at")
    assert event.ip == "127.0.0.1"


def test_stop_ends_a_sandbox_stream_with_its_run_under_asgi(
    asgi_server, charlie, make_integration, upstream
):
    upstream.handler = reply_sse([f"w{i} " for i in range(200)], delay=0.05)
    model = make_integration()
    browser = signed_in(asgi_server, charlie)
    shown, events = "", []
    form = stream_form(model) | {"stream": "s-asgi"}
    with browser.stream("POST", "/sandbox/stream", data=form) as response:
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
                events.append(event)
            elif line.startswith("data: ") and event == "token":
                shown += json.loads(line[6:])["t"]
                if len(shown) > 10 and "stop" not in events:
                    events.append("stop")
                    assert browser.post("/sandbox/stop", data={"stream": "s-asgi"}).json() == {
                        "stopping": 1
                    }
    assert events[-1] == "done"
    run = SandboxRun.objects.get()
    assert run.status == "stopped" and run.reply == shown and "w199" not in shown
