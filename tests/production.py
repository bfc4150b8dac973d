"""The console as the README deploys it, for tests: production settings, a database of
its own, `gunicorn -c config/gunicorn.conf.py` in either server mode."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent

PROD_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "x" * 20 + "prod-secret-key-with-plenty-of-entropy-0123456789",
    "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "ALLOWED_HOSTS": "console.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://console.example.com",
    "DATABASE_URL": "sqlite:////tmp/byollm-deploy-check.sqlite3",
}
# What a request through the TLS-terminating proxy the README puts in front carries.
SECURE = {"Host": "console.example.com", "X-Forwarded-Proto": "https"}

SEED_GATEWAY = """
from integrations.gateway import keys
from integrations.models import CustomModel, Integration
from django.contrib.auth import get_user_model
user = get_user_model().objects.create_user("ops", password="x-long-password-1")
integration = Integration.objects.create(name="Local", endpoint="{endpoint}", timeout_seconds=5)
CustomModel.objects.create(integration=integration, name="Model A", model_id="m")
print(keys.create(user, "ops", store_prompts=True)[1])
"""


def clean_environ() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FIELD_", "DEMO_"))}


def run_manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean_environ(), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class ProductionServer:
    """A migrated database with one model and a gateway key (`raw`), and gunicorn serving
    it: `start()` and `stop()`; `url`; `process` is gunicorn's master."""

    def __init__(self, tmp_path: Path, endpoint: str, mode: str = "asgi", **env: str):
        self.database = tmp_path / "prod.sqlite3"
        self.log = tmp_path / "gunicorn.log"
        self.env = {
            **PROD_ENV,
            "DATABASE_URL": f"sqlite:///{self.database}",
            "LLM_ALLOW_LOOPBACK": "1",
            "STATIC_ROOT": str(tmp_path / "static"),  # as the README's steps: collectstatic
            "USAGE_SPOOL_DIR": str(tmp_path / "spool"),
            **env,
        }
        for step in (("migrate", "--noinput"), ("collectstatic", "--noinput")):
            done = run_manage(*step, env=self.env)
            assert done.returncode == 0, done.stderr[-2000:]
        seeded = run_manage("shell", "-c", SEED_GATEWAY.format(endpoint=endpoint), env=self.env)
        self.raw = seeded.stdout.strip().splitlines()[-1]
        self.mode = mode
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.launch()
        for _ in range(150):
            try:
                httpx.get(f"{self.url}/healthz", headers=SECURE, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("gunicorn did not start")

    def launch(self) -> None:
        """Start gunicorn without waiting for it to answer."""
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"],
            cwd=ROOT,
            env={
                **clean_environ(),
                "CONSOLE_SERVER": self.mode,
                "USAGE_WRITE": "background",
                "DJANGO_BEHIND_TLS_PROXY": "1",
                "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                "WEB_CONCURRENCY": "1",
                **self.env,
            },
            stdout=subprocess.DEVNULL,
            # A file, not a pipe: a pipe nobody reads until stop() fills with the first
            # few logged tracebacks, and a worker blocked writing to it stops answering.
            stderr=self._log_file,
        )

    def gateway(self, timeout: float = 20) -> httpx.Client:
        headers = {**SECURE, "Authorization": f"Bearer {self.raw}"}
        return httpx.Client(base_url=f"{self.url}/v1", headers=headers, timeout=timeout)

    def calls_at_once(self, count: int = 16) -> list[httpx.Response]:
        """`count` chat calls at once, each on a fresh connection: the kernel deals them
        between the workers' sockets, and every worker's last call ends at about the
        same moment."""
        body = {"model": "Model A", "messages": [{"role": "user", "content": "hi"}]}

        def call(_):
            with self.gateway() as gateway:
                return gateway.post("/chat/completions", json=body)

        with ThreadPoolExecutor(count) as pool:
            return list(pool.map(call, range(count)))

    def workers(self) -> list[int]:
        """The pids of gunicorn's workers (the master's children)."""
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> str:
        """Stop gunicorn (SIGTERM, as a deploy does); return what it wrote to stderr."""
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log_file.close()
        return self.log.read_text(errors="replace")[-3000:]
