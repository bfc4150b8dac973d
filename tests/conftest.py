from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from integrations.llm import inputs
from integrations.models import AuthKind, AuthProfile, CustomModel, Integration, IntegrationHeader
from tests.upstream import Upstream

CANARY = "sk-canary-7f3e9b1d5a2c4e6f8a0b"
CANARY_HEADER = "hdr-canary-1a2b3c4d5e6f7a8b9c0d"


@pytest.fixture
def upstream():
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture
def tls_upstream():
    """The same over HTTPS, with a self-signed certificate (tests.upstream.certificate)."""
    server = Upstream(tls=True).start()
    yield server
    server.stop()


@pytest.fixture
def alice(db):
    """An admin."""
    return get_user_model().objects.create_superuser("alice", "alice@example.com", "pw-alice-123")


@pytest.fixture
def bob(db):
    """An editor."""
    user = get_user_model().objects.create_user("bob", "bob@example.com", "pw-bob-123")
    user.groups.add(Group.objects.get_or_create(name="Editor")[0])
    return user


@pytest.fixture
def charlie(db):
    """A read-only member."""
    user = get_user_model().objects.create_user("charlie", "charlie@example.com", "pw-charlie-123")
    user.groups.add(Group.objects.get_or_create(name="Member")[0])
    return user


@pytest.fixture
def users(alice, bob, charlie):
    return {"admin": alice, "editor": bob, "member": charlie}


@pytest.fixture(autouse=True)
def no_secret_in_any_html(monkeypatch):
    """Every response the suite's test client receives is scanned for the canaries."""
    original = Client.request

    def checked(self, **request):
        response = original(self, **request)
        if not getattr(response, "streaming", False):
            body = response.content.decode(errors="ignore")
            where = request.get("PATH_INFO")
            assert CANARY not in body and CANARY_HEADER not in body, f"a secret leaked into {where}"
        return response

    monkeypatch.setattr(Client, "request", checked)


@pytest.fixture
def make_integration(db, upstream):
    """Return a factory for an integration pointing at the local upstream, with one model."""

    def make(
        name: str = "Local",
        auth_kind: str = AuthKind.BEARER,
        token: str = CANARY,
        secret_header: str | None = CANARY_HEADER,
        protocol: str = "openai-chat",
        endpoint: str | None = None,
        name_suffix=None,
        **model_fields,
    ) -> CustomModel:
        profile = None
        endpoint = endpoint or f"{upstream.url}/v1"
        # Stored as if typed for this endpoint on the Add page.
        bound = [inputs.route(endpoint)]
        if auth_kind != AuthKind.NONE:
            profile = AuthProfile.objects.create(
                name=f"{name} key",
                kind=auth_kind,
                token=token,
                header_name="x-api-key",
                bound_origins=bound,
            )
        integration = Integration.objects.create(
            name=name,
            endpoint=endpoint,
            protocol=protocol,
            auth_profile=profile,
            timeout_seconds=5,
        )
        if secret_header:
            IntegrationHeader.objects.create(
                integration=integration,
                name="X-Org-Secret",
                value=secret_header,
                secret=True,
                bound_origins=bound,
            )
        IntegrationHeader.objects.create(integration=integration, name="X-Team", value="research")
        fields = {
            "name": "Model A" if name_suffix is None else f"Model {name_suffix}",
            "model_id": "test-model",
            "test_model_parameters": {"max_tokens": 16},
        }
        fields.update(model_fields)
        return CustomModel.objects.create(integration=integration, **fields)

    return make


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's Chromium is not installed at /usr/bin/chromium (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def _no_playwright_loop(request):
    """Hide the Playwright loop from tests that do not drive the browser.

    Playwright's sync API leaves its event loop marked as running in the worker's
    main thread for the whole session, and Django's WSGI handler then refuses to
    run an async view (`AsyncToSync in the same thread as an async event loop`).
    Production has no such loop, so a test that is not a browser test runs
    without it, whichever tests ran before it on the same worker.
    """
    import asyncio

    uses_browser = any(name in request.fixturenames for name in ("browser", "page"))
    loop = asyncio._get_running_loop()
    if loop is None or uses_browser:
        yield
        return
    asyncio._set_running_loop(None)
    try:
        yield
    finally:
        asyncio._set_running_loop(loop)


class AsgiServer:
    """The console as production serves it (ASGI, under uvicorn), in a thread on a free port."""

    def __init__(self):
        import asyncio
        import threading

        import uvicorn
        from django.urls import get_resolver

        from config.asgi import application

        # The URLconf loads as a test's first request would load it, outside any test's
        # warnings filter (one test turns every warning into an error).
        get_resolver().url_patterns

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        # The production application: static files through WhiteNoise, /v1/ on its own chain.
        self.busy = 0  # requests still being handled, closers included
        config = uvicorn.Config(self._counted(application), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[sock])), daemon=True
        )
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            self.thread.join(0.05)
        else:
            raise RuntimeError("uvicorn did not start")

    def _counted(self, app):
        async def counted(scope, receive, send):
            self.busy += 1
            try:
                await app(scope, receive, send)
            finally:
                self.busy -= 1

        return counted

    def wait_idle(self, timeout: float = 10.0) -> None:
        """A response's closers (usage rows, spans) run after its last byte went out:
        a test that ends at once must not flush the database under them."""
        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def _asgi_server_process():
    server = AsgiServer()
    yield server
    server.stop()


@pytest.fixture
def asgi_server(_asgi_server_process):
    """The session's uvicorn, waited on after each test until its calls have closed."""
    yield _asgi_server_process
    _asgi_server_process.wait_idle()


@pytest.fixture(params=["wsgi", "asgi"])
def console_server(request):
    """The console served both ways: WSGI (runserver, pytest-django's live server) and
    ASGI (production). Tests that take it run once under each."""
    return request.getfixturevalue("live_server" if request.param == "wsgi" else "asgi_server")


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.csp_violations = violations
    yield page
    context.close()
    assert not violations, f"the page broke its Content-Security-Policy: {violations}"


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def log_in(page, username: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


@pytest.fixture(autouse=True)
def fresh_cache():
    """Rate-limit counters and cached OAuth tokens do not leak between tests."""
    from django.core.cache import cache

    from integrations.gateway import cooldowns

    cache.clear()
    cooldowns.forget_all()
    yield
    cache.clear()
    cooldowns.forget_all()


@pytest.fixture
def api_token():
    """Return a function making a live API token for a user: token(user) -> 'byo_...'."""
    from integrations.team import tokens

    def make(user, **kwargs) -> str:
        return tokens.create(user, "test token", **kwargs)[1]

    return make


def typed(config):
    """Return a config whose secrets count as typed for where it goes (as a form binds them)."""
    from dataclasses import replace

    route = config.route()
    headers = tuple(replace(h, bound=h.bound | {route}) for h in config.headers)
    return replace(config, auth=config.auth.bound_to(*config.auth_routes()), headers=headers)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """Test SQLite in a file, as `make run` does: WAL and busy timeouts hold under threads
    (shared-cache memory databases answer "table is locked" instead of waiting)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def _redis_db() -> int:
    """One Redis database per xdist worker: the fixture clears its database."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return 8 + int(worker.removeprefix("gw") or 0) % 8


@pytest.fixture
def redis_cache(settings):
    """The production cache backend on the local Redis (skips when Redis is down)."""
    from django.core.cache import cache

    from integrations import callcache

    if not redis_up():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    settings.CACHES = {
        "default": {
            "BACKEND": "config.cache.ConsoleRedisCache",
            "LOCATION": f"redis://127.0.0.1:6379/{_redis_db()}",
            "KEY_PREFIX": "test",
        }
    }
    cache.clear()
    callcache.bump()
    yield
    cache.clear()


@pytest.fixture
def objects(make_integration, users):
    """One of each object a page shows: a model, a run, a test, a saved prompt, a token
    (the access matrix and the every-page browser checks visit each page with them)."""
    from integrations.models import ConnectionTest
    from integrations.team import tokens
    from sandbox.models import SandboxRun, SavedPrompt

    model = make_integration()
    member = users["member"]
    run = SandboxRun.objects.create(
        user=member,
        model=model,
        model_name="Model A",
        integration_name="Local",
        user_prompt="hi",
        status="ok",
    )
    test = ConnectionTest.objects.create(
        integration=model.integration, model=model, ok=True, config_hash="x"
    )
    prompt = SavedPrompt.objects.create(owner=member, name="Shared", shared=True)
    token, _ = tokens.create(member, "t")
    get_user_model().objects.create_user("target", password="pw-target-123")
    from integrations.gateway import keys

    gateway_key, _ = keys.create(users["editor"], "app")
    from integrations.models import Route, RouteTarget

    route = Route.objects.create(name="Steady", created_by=users["editor"])
    RouteTarget.objects.create(route=route, model=model, position=0)
    from sandbox.models import Dataset, DatasetVersion, Experiment, ExperimentResult, PromptVersion

    PromptVersion.objects.create(prompt=prompt, number=1, user_prompt="hi {{word}}")
    PromptVersion.objects.create(
        prompt=prompt, number=2, user_prompt="hello {{word}}", message="warmer"
    )
    dataset = Dataset.objects.create(name="Words", owner=users["editor"])
    rows = [{"variables": {"word": w}, "expected": w.upper(), "metadata": {}} for w in ("a", "b")]
    version = DatasetVersion.objects.create(dataset=dataset, number=1, rows=rows)
    targets = [
        {"model": str(model.pk), "name": "Local/Model A"},
        {"route": str(route.pk), "name": "Steady"},
    ]
    experiment = Experiment.objects.create(
        name="First", owner=member, dataset_version=version, user_prompt="Say {{word}}",
        targets=targets, scorers=[{"kind": "exact"}], status="done",
    )  # fmt: skip
    for row in range(2):
        for target in range(2):
            ExperimentResult.objects.create(experiment=experiment, row=row, target=target, status="ok",
                                            output="A" if row == 0 else "b", passed=row == 0, latency_ms=12, score=float(row == 0),
                                            scores=[{"name": "Exact match", "value": float(row == 0),
                                                     "passed": row == 0, "reason": ""}])  # fmt: skip
    from integrations.models import AlertIncident, AlertRule
    from tests.production import free_port as closed_port  # nothing listens there

    alert = AlertRule.objects.create(
        name="Failing checks", kind="check_failed", emails="ops@example.com",
        webhook_url=f"http://127.0.0.1:{closed_port()}/services/T0/B0/secret",
    )  # fmt: skip
    incident = AlertIncident.objects.create(rule=alert, subject=f"model:{model.pk}",
                                            title="Local / Model A fails its check (auth)")  # fmt: skip
    incident.deliveries.create(event="firing", channel="email", target="ops@example.com", ok=True)
    incident.deliveries.create(event="firing", channel="webhook", target="https://hooks.example.com",
                               ok=False, attempts=3, error="The webhook answered 500.")  # fmt: skip
    return {
        "alert": alert,
        "dataset": dataset,
        "experiment": experiment,
        "gateway_key": gateway_key,
        "route": route,
        "model": model,
        "integration": model.integration,
        "profile": model.integration.auth_profile,
        "run": run,
        "prompt": prompt,
        "test": test,
        "token": token,
    }


class PrivateRedis:
    """A redis-server of the test's own, on a free port, that it may stop and start
    (the shared one on 6379 serves every other test)."""

    def __init__(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> None:
        import subprocess
        import time

        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def private_redis(settings):
    """The production cache backend on a Redis of the test's own (KEY_PREFIX as settings
    gives it, so a subprocess with REDIS_URL set sees the same keys)."""
    import shutil

    from django.core.cache import cache

    from integrations import callcache

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis()
    server.start()
    settings.CACHES = {
        "default": {
            "BACKEND": "config.cache.ConsoleRedisCache",
            "LOCATION": server.url,
            "KEY_PREFIX": "byollm",
        }
    }
    callcache.bump()
    yield server
    server.stop()
    cache.close()


class OtherProcess:
    """A console process of its own on this test's database (and Redis): what another
    worker or host does. `run(code)` executes Python there and returns what it printed."""

    REPL = (
        "import django, json, sys, io, contextlib; django.setup()\n"
        "for line in sys.stdin:\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        exec(json.loads(line), {})\n"
        "    print(json.dumps(out.getvalue()), flush=True)\n"
    )

    def __init__(self, redis_url: str = ""):
        import subprocess
        import sys

        from django.db import connection

        db = connection.settings_dict
        if db["ENGINE"].endswith("sqlite3"):
            url = f"sqlite:///{db['NAME']}"
        else:
            host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
            url = f"postgres://{db['USER'] or 'postgres'}@{host}:{port}/{db['NAME']}"
        env = dict(os.environ, DATABASE_URL=url, DJANGO_SETTINGS_MODULE="config.settings")
        if redis_url:
            env["REDIS_URL"] = redis_url
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.REPL],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )

    def run(self, code: str) -> str:
        import json

        self.process.stdin.write(json.dumps(code) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the other process failed (its error is on stderr above)"
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(10)
