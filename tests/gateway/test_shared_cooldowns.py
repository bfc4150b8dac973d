"""Two console instances (gunicorn, production settings) on one database and one Redis
share a route's cooldowns: a target one instance cooled is skipped by the other without a
call, as a fleet behind a load balancer needs."""

from __future__ import annotations

import copy

import pytest
import redis

from tests.conftest import _redis_db, redis_up
from tests.gateway import failover
from tests.production import ProductionServer, free_port, run_manage
from tests.upstream import Upstream

SEED_ROUTE = """
from integrations.models import CustomModel, Integration, Route, RouteTarget
a = CustomModel.objects.get(name="Model A")
b_up = Integration.objects.create(name="Backup", endpoint="{backup}", timeout_seconds=5)
b = CustomModel.objects.create(integration=b_up, name="Model B", model_id="model-b")
route = Route.objects.create(name="pair", failures_to_cool=1, cooldown_seconds=120,
                             retry_same=[], move_on=["server_error"])
RouteTarget.objects.create(route=route, model=a, position=0)
RouteTarget.objects.create(route=route, model=b, position=1)
"""


@pytest.mark.skipif(not redis_up(), reason="needs the local Redis")
def test_a_cooldown_set_by_one_instance_is_kept_by_the_other(tmp_path, upstream):
    backup = Upstream().start()
    backup.handler = failover.good("b")
    upstream.handler = failover.error(503)
    url = f"redis://127.0.0.1:6379/{_redis_db()}"
    redis.Redis.from_url(url).flushdb()
    first = ProductionServer(tmp_path, f"{upstream.url}/v1", REDIS_URL=url)
    seeded = run_manage("shell", "-c", SEED_ROUTE.format(backup=f"{backup.url}/v1"), env=first.env)
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    second = copy.copy(first)
    second.port = free_port()
    second.url = f"http://127.0.0.1:{second.port}"
    body = {"model": "pair", "messages": [{"role": "user", "content": "hi"}]}
    try:
        first.start()
        second.start()
        with first.gateway() as gateway:
            answer = gateway.post("/chat/completions", json=body)
        assert answer.json()["choices"][0]["message"]["content"] == "from model-b"
        assert len(upstream.requests) == 1  # Model A failed once: cooled for 120 s
        with second.gateway() as gateway:
            for _ in range(3):
                answer = gateway.post("/chat/completions", json=body)
                assert answer.json()["choices"][0]["message"]["content"] == "from model-b"
        assert len(upstream.requests) == 1, "the other instance called a cooled target"
    finally:
        for server in (first, second):
            if server.process is not None:
                server.stop()
        backup.stop()
