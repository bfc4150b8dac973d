"""Many calls at once through a real server: every one answers, none with a 500.

On PostgreSQL (CI runs the suite there too) the server also holds no more database
connections afterwards than its pool allows: a thread gives its connection back
while it waits on the upstream. The 256-call figure lives in bench/bench_postgres.py.
"""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from tests.upstream import openai_reply, reply_json

CALLS = 50


def pool_size() -> int | None:
    pool = connection.settings_dict.get("OPTIONS", {}).get("pool")
    return pool.get("max_size") if isinstance(pool, dict) else None


@pytest.mark.django_db(transaction=True)
def test_fifty_simultaneous_calls_all_answer(
    live_server, bob, api_token, make_integration, upstream, settings
):
    settings.SANDBOX_RATE_LIMIT = (10_000, 60)
    upstream.handler = reply_json(openai_reply("pong"), delay=0.3)
    model = make_integration()
    token = api_token(bob)
    body = json.dumps({"model": str(model.pk), "user": "ping"}).encode()

    def one(_: int) -> int:
        request = urllib.request.Request(
            f"{live_server.url}/api/v2/chat",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    with ThreadPoolExecutor(CALLS) as pool:
        statuses = list(pool.map(one, range(CALLS)))
    assert statuses == [200] * CALLS
    assert len(upstream.requests) == CALLS
    if connection.vendor == "postgresql" and pool_size():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )
            held = cursor.fetchone()[0]
        # The live server's pool, plus this test's own connection.
        assert held <= pool_size() + 1, held
