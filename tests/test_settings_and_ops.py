"""Production settings, health check, demo upstream, bootstrap."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

from integrations import writes
from integrations.models import CustomModel, Integration
from tests.conftest import _redis_db, redis_up
from tests.production import PROD_ENV, ROOT, SECURE, ProductionServer, run_manage
from tests.upstream import reply_load


def test_check_deploy_is_clean_with_production_settings():
    proc = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PROD_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues" in proc.stdout


@pytest.mark.parametrize(
    "missing, says",
    [("DJANGO_SECRET_KEY", "token_urlsafe"), ("FIELD_ENCRYPTION_KEY", "generate_key")],
)
def test_missing_production_keys_stop_start_up_with_the_command_that_makes_one(missing, says):
    env = {k: v for k, v in PROD_ENV.items() if k != missing}
    proc = run_manage("check", env=env)
    assert proc.returncode != 0
    assert "ImproperlyConfigured" in proc.stderr and says in proc.stderr


def test_keys_can_come_from_files(tmp_path):
    key_file = tmp_path / "field-key"
    key_file.write_text(PROD_ENV["FIELD_ENCRYPTION_KEY"] + "\n")
    env = {k: v for k, v in PROD_ENV.items() if k != "FIELD_ENCRYPTION_KEY"}
    env["FIELD_ENCRYPTION_KEY_FILE"] = str(key_file)
    proc = run_manage("check", env=env)
    assert proc.returncode == 0, proc.stderr


def test_an_invalid_field_key_is_refused():
    proc = run_manage("check", env={**PROD_ENV, "FIELD_ENCRYPTION_KEY": "not-a-key"})
    assert proc.returncode != 0 and "invalid key" in proc.stderr


def test_healthz_answers_without_login(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "local"}


def test_every_other_page_needs_login(client, db):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_demo_upstream_answers_with_usage_and_honours_max_tokens(client, db):
    response = client.post(
        "/demo/v1/chat/completions",
        {
            "model": "demo-small",
            "messages": [{"role": "user", "content": "hello there"}],
            "max_tokens": 5,
        },
        content_type="application/json",
        headers={"Authorization": "Bearer demo-anything"},
    )
    data = response.json()
    assert response.status_code == 200
    assert data["usage"]["completion_tokens"] == 5
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + 5
    again = client.post(
        "/demo/v1/chat/completions",
        {
            "model": "demo-small",
            "messages": [{"role": "user", "content": "hello there"}],
            "max_tokens": 5,
        },
        content_type="application/json",
        headers={"Authorization": "Bearer demo-anything"},
    ).json()
    assert again["choices"] == data["choices"]


def test_the_demo_upstream_refuses_a_wrong_key(client, db):
    response = client.post(
        "/demo/v1/chat/completions",
        {"model": "demo-small", "messages": []},
        content_type="application/json",
    )
    assert response.status_code == 401


@override_settings(DEMO_UPSTREAM_ENABLED=False)
def test_the_demo_upstream_cannot_be_reached_when_disabled(client, db):
    response = client.post(
        "/demo/v1/chat/completions",
        {"model": "demo-small", "messages": [{"role": "user", "content": "x"}]},
        content_type="application/json",
        headers={"Authorization": "Bearer demo-anything"},
    )
    assert response.status_code == 404
    assert (
        client.get("/demo/v1/models", headers={"Authorization": "Bearer demo-x"}).status_code == 404
    )


def test_the_demo_upstream_is_off_in_production_settings():
    proc = run_manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.DEMO_UPSTREAM_ENABLED)",
        env=PROD_ENV,
    )
    assert proc.stdout.strip().endswith("False"), proc.stderr


def test_bootstrap_creates_one_admin_and_the_demo_data_once(db, capsys):
    call_command("bootstrap")
    out = capsys.readouterr().out
    assert "username: admin" in out and "password: " in out
    password = out.split("password: ")[1].split()[0]
    assert get_user_model().objects.get(username="admin").check_password(password)
    call_command("bootstrap")
    assert "password" not in capsys.readouterr().out.split("already")[0].split("admin account")[-1]
    assert get_user_model().objects.count() == 1
    assert Integration.objects.filter(name="Demo upstream").count() == 1
    assert CustomModel.objects.filter(integration__name="Demo upstream").count() == 2


def test_demo_data_passes_its_test_against_the_demo_upstream(db, live_server, settings):
    settings.DEMO_BASE_URL = f"{live_server.url}/demo/v1"
    call_command("bootstrap")
    model = CustomModel.objects.get(model_id="demo-small")
    result, test = writes.test_model(model)
    assert result.ok, result.error
    assert result.usage.total_tokens and result.finish_reason in ("stop", "length")
    model.refresh_from_db()
    assert model.last_test_status == "passing" and test.ok


def test_the_demo_follows_the_port_the_console_serves_on(db, live_server, settings):
    # A first `make run` on port 8000, then `make run PORT=<another>`.
    settings.DEMO_BASE_URL = "http://127.0.0.1:8000/demo/v1"
    call_command("bootstrap")
    settings.DEMO_BASE_URL = f"{live_server.url}/demo/v1"
    call_command("bootstrap")
    integration = Integration.objects.get(name="Demo upstream")
    assert integration.endpoint == settings.DEMO_BASE_URL
    for model in integration.models.all():
        result, _ = writes.test_model(model)
        assert result.ok, result.error  # the demo key was bound to the new port


def test_a_demo_pointed_elsewhere_by_someone_stays_there(db, settings):
    call_command("bootstrap")
    Integration.objects.filter(name="Demo upstream").update(endpoint="https://llm.example/v1")
    settings.DEMO_BASE_URL = "http://127.0.0.1:9000/demo/v1"
    call_command("bootstrap")
    assert Integration.objects.get(name="Demo upstream").endpoint == "https://llm.example/v1"


def test_make_run_takes_a_port():
    makefile = (ROOT / "Makefile").read_text()
    assert "PORT ?= 8000" in makefile
    assert "runserver 127.0.0.1:$(PORT)" in makefile
    assert "DEMO_BASE_URL=http://127.0.0.1:$(PORT)/demo/v1" in makefile


@pytest.mark.parametrize("mode, preload", [("wsgi", "1"), ("asgi", "1"), ("asgi", "0")])
def test_the_production_server_serves_pages_and_the_gateway(tmp_path, upstream, mode, preload):
    """`gunicorn -c config/gunicorn.conf.py` as the README says, production settings and
    all, in both server modes (and with each worker loading the console itself):
    pages, the API and real gateway calls, streamed and not, with their usage rows
    written by the background writer. Outside the test process, Django's guard against
    queries on an event loop is on, as in production."""
    upstream.handler = reply_load(tokens=3)  # streams when asked, JSON when not
    env = {"GUNICORN_PRELOAD": preload}
    if redis_up():  # the shared cache: after the first call, admission asks only Redis
        env["REDIS_URL"] = f"redis://127.0.0.1:6379/{_redis_db()}"
        redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    server = ProductionServer(tmp_path, f"{upstream.url}/v1", mode, **env)
    server.start()
    gateway = server.gateway()
    body = {"model": "Model A", "messages": [{"role": "user", "content": "hi"}]}
    try:
        health = httpx.get(f"{server.url}/healthz", headers=SECURE, timeout=1)
        assert health.json()["status"] == "ok"
        login = httpx.get(f"{server.url}/login/", headers=SECURE)
        assert login.status_code == 200 and "Content-Security-Policy" in login.headers
        models = gateway.get("/models")
        assert models.status_code == 200 and models.json()["data"][0]["id"] == "Model A"
        answer = gateway.post("/chat/completions", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"].startswith("tok0")
        with gateway.stream("POST", "/chat/completions", json={**body, "stream": True}) as r:
            lines = [line for line in r.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]" and "tok2" in "".join(lines)
        assert gateway.post("/chat/completions", json={**body, "model": "nope"}).status_code == 404
        again = gateway.post("/chat/completions", json=body)  # warm: admitted on the loop
        assert again.status_code == 200, again.text
    finally:
        stderr = server.stop()
    # The worker wrote what it held before it went (atexit), then stopped cleanly.
    with sqlite3.connect(server.database) as db:
        rows = db.execute("select ok, streamed from integrations_usagerecord").fetchall()
    assert sorted(rows) == [(0, 0), (1, 0), (1, 0), (1, 1)], (rows, stderr)  # the 404 too


def _memory_kb(pid: int) -> dict[str, int]:
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return {name: int(kb) for name, kb in re.findall(r"^(\w+):\s+(\d+) kB", text, re.M)}


def test_workers_share_the_console_the_master_loaded(tmp_path, upstream):
    """With preload (the default) the master imports the console once and forks its
    workers: most of what a worker holds, after serving calls too, is shared with the
    master (test_usage_rows.py kills a worker: its replacement is forked the same way)."""
    upstream.handler = reply_load(tokens=3)
    server = ProductionServer(tmp_path, f"{upstream.url}/v1", "asgi", WEB_CONCURRENCY="2")
    server.start()
    try:
        with server.gateway() as gateway:
            for _ in range(20):
                answer = gateway.post("/chat/completions", json={"model": "Model A",
                                      "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
                assert answer.status_code == 200, answer.text
        master = _memory_kb(server.process.pid)
        assert master["Rss"] > 50_000  # Django, the views and the API are loaded there
        for pid in server.workers():
            worker = _memory_kb(pid)
            private = worker["Private_Clean"] + worker["Private_Dirty"]
            assert private < worker["Rss"] / 2, worker
    finally:
        server.stop()


def _connections_by_worker(port: int, workers: list[int]) -> list[int]:
    """How many established connections to `port` each worker holds (as `ss -p` finds
    them: the sockets in /proc/net/tcp, matched to the workers' file descriptors)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # ESTABLISHED
            inodes.add(f"socket:[{fields[9]}]")
    counts = []
    for pid in workers:
        fds = Path(f"/proc/{pid}/fd")
        counts.append(sum(1 for fd in fds.iterdir() if _link(fd) in inodes))
    return counts


def _link(fd: Path) -> str:
    try:
        return os.readlink(fd)
    except OSError:  # closed meanwhile
        return ""


def test_connections_opened_at_once_are_dealt_between_the_workers(tmp_path, upstream):
    """Under asgi each worker listens on a socket of its own (SO_REUSEPORT). On one
    shared socket, the worker that woke first took every connection of a burst (32 to
    0), and the other worker's core stood idle."""
    server = ProductionServer(tmp_path, f"{upstream.url}/v1", "asgi", WEB_CONCURRENCY="2")
    server.start()
    request = (
        b"GET /healthz HTTP/1.1\r\nHost: console.example.com\r\nX-Forwarded-Proto: https\r\n\r\n"
    )

    async def burst() -> list[int]:
        opened = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", server.port) for _ in range(32))
        )
        for _, writer in opened:
            writer.write(request)
        await asyncio.gather(*(reader.readuntil(b"\r\n\r\n") for reader, _ in opened))
        counts = _connections_by_worker(server.port, server.workers())
        for _, writer in opened:
            writer.close()
        return counts

    try:
        time.sleep(1)  # both workers listening
        for _ in range(5):
            counts = asyncio.run(asyncio.wait_for(burst(), 10))
            assert sum(counts) == 32 and min(counts) >= 4, counts
            time.sleep(0.2)
    finally:
        server.stop()


def test_a_second_server_on_an_address_in_use_stops_rather_than_joining_it(tmp_path, upstream):
    """Under reuse_port the kernel would let a second server bind the port and deal it a
    share of the first one's connections. It must fail as any server does on an
    address in use, and start once the address is free again."""
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    first = ProductionServer(tmp_path / "first", f"{upstream.url}/v1", "asgi")
    second = ProductionServer(tmp_path / "second", f"{upstream.url}/v1", "asgi")
    second.port, second.url = first.port, first.url
    first.start()
    try:
        second.launch()
        assert second.process.wait(timeout=30) == 1
        assert "Another server is listening on 127.0.0.1" in second.stop()
        with first.gateway() as client:
            assert client.get("/models").status_code == 200
    finally:
        first.stop()
    second.start()  # the address is free: a restart in its place starts at once
    try:
        with second.gateway() as client:
            assert client.get("/models").status_code == 200
    finally:
        second.stop()


def test_production_prints_no_mail_and_pools_postgresql_connections():
    code = (
        "from django.conf import settings as s; d = s.DATABASES['default'];"
        "print(s.EMAIL_BACKEND, s.PASSWORD_RESET_BY_EMAIL, d['CONN_MAX_AGE'],"
        " d['OPTIONS']['pool']['max_size'])"
    )
    env = PROD_ENV | {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres"}
    proc = run_manage("shell", "-c", code, env=env)
    assert proc.stdout.split()[-4:] == [
        "django.core.mail.backends.dummy.EmailBackend",
        "False",
        "0",
        "8",
    ], proc.stdout + proc.stderr


def test_manage_py_in_an_unconfigured_checkout_runs_in_dev_mode():
    proc = run_manage("check", env={})
    assert proc.returncode == 0, proc.stderr
    assert "dev mode" in proc.stderr


def test_the_wsgi_app_without_keys_fails_closed():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FIELD_"))}
    proc = subprocess.run(
        [sys.executable, "-c", "import config.wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "ImproperlyConfigured" in proc.stderr


@pytest.mark.django_db(transaction=True)
def test_make_runs_demo_models_start_tested_once_the_server_answers(live_server, settings, capsys):
    from integrations.models import CustomModel, TestStatus

    settings.DEMO_BASE_URL = f"{live_server.url}/demo/v1"
    call_command("bootstrap")
    assert set(CustomModel.objects.values_list("last_test_status", flat=True)) == {TestStatus.NEVER}
    call_command("bootstrap", test_demo=True)
    assert set(CustomModel.objects.values_list("last_test_status", flat=True)) == {
        TestStatus.PASSING
    }
    assert "Demo model Demo small: its first test passed." in capsys.readouterr().out
