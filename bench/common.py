"""Shared set-up for the benchmarks: a database, a local upstream, gunicorn as in production.

Every benchmark talks only to 127.0.0.1: the upstream is tests/upstream.py's load-test
server, the console runs under `gunicorn -c config/gunicorn.conf.py` (ASGI, uvicorn workers).
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

WORKDIR = Path(tempfile.mkdtemp(prefix="byollm-bench-"))
ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "bench-secret-key-0123456789-0123456789-0123456789-abcdef",
    "FIELD_ENCRYPTION_KEY": "8nVcC0wQ6tH8bqzv0kq3l2pA0zKmWn7w7d1XyG5ZqVI=",
    # BENCH_DATABASE_URL picks PostgreSQL (a fresh, empty database) instead of SQLite.
    "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL")
    or f"sqlite:///{WORKDIR / 'bench.sqlite3'}",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DJANGO_SECURE_SSL_REDIRECT": "0",
    "DJANGO_SECURE_COOKIES": "0",
    "DJANGO_HSTS_SECONDS": "0",
    "LLM_ALLOW_LOOPBACK": "1",
    "SANDBOX_RATE_LIMIT": "1000000/60",
    "LOG_LEVEL": "WARNING",
}


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


if _redis_up():
    ENV["REDIS_URL"] = "redis://127.0.0.1:6379/15"
os.environ.update(ENV)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from tests.upstream import Upstream  # noqa: E402

PASSWORD = "bench-password-123"


def chat_payload(model) -> dict:
    """The prompt every overhead measurement sends, as POST /api/v2/chat takes it."""
    return {
        "model": str(model.pk),
        "system": "Be brief.",
        "user": "Say hi",
        "parameters": {"max_tokens": 20},
    }


def sandbox_form(model) -> dict:
    """The same prompt as the Sandbox run view's form takes it."""
    return {
        "model": str(model.pk),
        "system_prompt": "Be brief.",
        "user_prompt": "Say hi",
        "max_tokens": "20",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_database() -> None:
    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # production serves the manifest
    from django.core.cache import cache

    cache.clear()


def make_user(username: str = "bench", role: str = "Editor"):
    from django.contrib.auth import get_user_model

    from integrations.team.roles import set_role

    user = get_user_model().objects.create_user(username, password=PASSWORD)
    set_role(user, role)
    return user


def make_model(name: str, endpoint: str, model_id: str = "bench-model", timeout: float = 60):
    from integrations.llm import inputs
    from integrations.models import AuthKind, AuthProfile, CustomModel, Integration

    profile = AuthProfile.objects.create(
        name=f"{name} key",
        kind=AuthKind.BEARER,
        token="sk-bench-key-000000000",
        bound_origins=[inputs.route(endpoint)],
    )
    integration = Integration.objects.create(
        name=name, endpoint=endpoint, auth_profile=profile, timeout_seconds=timeout
    )
    return CustomModel.objects.create(integration=integration, name=name, model_id=model_id)


def fast_setup() -> tuple:
    """A migrated database, a local upstream that answers at once, a user with a model on
    it, and an API token: (upstream, model, token)."""
    from tests.upstream import reply_load

    prepare_database()
    upstream = start_upstream(reply_load(latency=0.0, tokens=20))
    user = make_user()
    model = make_model("Fast", f"{upstream.url}/v1")
    from integrations.team import tokens

    return upstream, model, tokens.create(user, "bench")[1]


def start_upstream(handler) -> Upstream:
    server = Upstream(record=False).start()
    server.handler = handler
    return server


class UpstreamProcess:
    """The load-test upstream in its own process, so its threads do not share the
    benchmark client's interpreter lock (64 clients and 64 handlers in one process
    measure the GIL, not the console)."""

    def __init__(self, **load):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        self.proc = ctx.Process(target=_serve_upstream, args=(load, queue), daemon=True)
        self.proc.start()
        self.port = queue.get(timeout=30)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(timeout=5)


def _serve_upstream(load: dict, queue) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.upstream import Upstream, reply_load

    server = Upstream(record=False).start()
    server.handler = reply_load(**load)
    queue.put(server.port)
    while True:
        time.sleep(3600)


class Gunicorn:
    """The console under the production server config, on a free port."""

    def __init__(self, extra_env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = extra_env or {}
        env = {**os.environ, **ENV, **self.env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        # The error log goes to a file: a pipe nobody reads fills up, and a worker that
        # blocks writing to it stops answering.
        self.log = WORKDIR / f"gunicorn-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError("gunicorn did not start: " + self.log.read_text()[-2000:])
        # Let every worker finish booting, so the first timings are not imports.
        time.sleep(2)

    def worker_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True
        ).stdout
        return [int(p) for p in out.split()]

    def worker_rss_mb(self) -> list[float]:
        sizes = []
        for pid in self.worker_pids():
            status = Path(f"/proc/{pid}/status").read_text()
            sizes.append(int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024)
        return sizes

    def server_mb(self) -> dict:
        """The whole server's memory (master and workers): `rss`, each process's resident
        set added up, counts every page they share once per process (with preload, the
        console the master loaded and forked is in all three); `pss`, each shared page
        split between the processes that share it, adds up to what the server takes."""
        totals = {"rss": 0.0, "pss": 0.0}
        for pid in [self.proc.pid, *self.worker_pids()]:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
            for name in totals:
                kb = re.search(rf"^{name.capitalize()}:\s+(\d+) kB", text, re.M).group(1)
                totals[name] += int(kb) / 1024
        return {name: round(mb, 1) for name, mb in totals.items()}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def logged_in_client(base_url: str, username: str = "bench") -> httpx.Client:
    """An httpx client holding a console session and its CSRF token."""
    client = httpx.Client(base_url=base_url, timeout=120)
    page = client.get("/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = client.post(
        "/login/", data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 302, response.text[:500]
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
    client.headers["Referer"] = base_url + "/"
    return client


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)

    def pct(p: float) -> float:
        if not ordered:
            return float("nan")
        index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
        return ordered[index]

    return {
        "n": len(ordered),
        "p50": round(pct(50), 2),
        "p95": round(pct(95), 2),
        "p99": round(pct(99), 2),
        "mean": round(statistics.fmean(ordered), 2) if ordered else None,
    }


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "database": "postgresql" if ENV["DATABASE_URL"].startswith("postgres") else "sqlite (WAL)",
        "cache": "redis" if "REDIS_URL" in ENV else "local memory",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": load_average(),
    }


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: beside every figure, so a busy machine shows."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def table(title: str, rows: list[list], header: list[str]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    print(f"\n{title} [load {load_average()}]")
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)))


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2))
    print(f"(written to {path.relative_to(ROOT)})")
    return path
