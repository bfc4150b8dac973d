"""Under asgi, a worker that served calls and then idles is replaced by a fresh fork of
the master (config/workers.py, GUNICORN_IDLE_REPLACE): the pages it copied while
serving go back to being shared. Real gunicorn, real calls."""

from __future__ import annotations

import re
import sqlite3
import time

import httpx

from tests.production import SECURE, ProductionServer
from tests.upstream import reply_load

BODY = {"model": "Model A", "messages": [{"role": "user", "content": "hi"}]}


def _health(server: ProductionServer) -> int | str:
    """A health check on a connection of its own, as a load balancer makes them."""
    try:
        return httpx.get(f"{server.url}/healthz", headers=SECURE, timeout=2).status_code
    except httpx.HTTPError as exc:
        return repr(exc)


def test_idle_workers_that_served_calls_are_replaced_one_at_a_time_and_the_port_keeps_answering(
    tmp_path, upstream
):
    upstream.handler = reply_load(tokens=3)
    server = ProductionServer(
        tmp_path, f"{upstream.url}/v1", "asgi", WEB_CONCURRENCY="2", GUNICORN_IDLE_REPLACE="1"
    )
    server.start()
    try:
        time.sleep(1)  # both workers serving
        first = set(server.workers())
        # Health checks every few milliseconds are not calls: nobody is replaced for them.
        until = time.monotonic() + 2.5
        while time.monotonic() < until:
            assert _health(server) == 200
        assert set(server.workers()) == first

        assert [a.status_code for a in server.calls_at_once(16)] == [200] * 16
        answers = []
        deadline = time.monotonic() + 30
        while set(server.workers()) & first and time.monotonic() < deadline:
            answers.append(_health(server))
        assert not set(server.workers()) & first, "the workers were not replaced"
        time.sleep(0.5)
        assert set(answers) == {200}, [a for a in answers if a != 200][:3]
        with server.gateway() as gateway:  # the fresh workers serve calls
            assert gateway.post("/chat/completions", json=BODY).status_code == 200
    finally:
        log = server.stop()
    with sqlite3.connect(server.database) as db:  # each worker wrote its rows as it went
        assert db.execute("select count(*) from integrations_usagerecord").fetchone() == (17,)
    # One at a time: the second worker went only once the first one's fork was booted.
    events = re.findall(r"(idle for \d+ s after serving calls|Booting worker)", log)
    replaced = [i for i, event in enumerate(events) if event.startswith("idle")]
    assert len(replaced) >= 2, log
    assert "Booting worker" in events[replaced[0] + 1 : replaced[1]], events


def test_a_worker_with_a_call_in_flight_is_not_replaced(tmp_path, upstream):
    """A stream that outlasts the idle time finishes whole: idle counts from the end of
    the last call, and a worker with one in flight is never replaced."""
    upstream.handler = reply_load(tokens=12, token_rate=4)  # a 3 s stream
    server = ProductionServer(
        tmp_path, f"{upstream.url}/v1", "asgi", WEB_CONCURRENCY="2", GUNICORN_IDLE_REPLACE="1"
    )
    server.start()
    try:
        time.sleep(1)  # both workers serving
        with server.gateway() as gateway:
            assert gateway.post("/chat/completions", json=BODY).status_code == 200
            before = set(server.workers())
            with gateway.stream("POST", "/chat/completions", json={**BODY, "stream": True}) as r:
                lines = [line for line in r.iter_lines() if line.startswith("data: ")]
            # Counted from the first call's end, the worker has idled 3 s: past the 1 s limit.
            assert "after serving calls" not in server.log.read_text()
        assert lines[-1] == "data: [DONE]" and "tok11" in "".join(lines)
        assert set(server.workers()) == before
    finally:
        server.stop()


def test_only_one_worker_at_a_time_takes_its_turn_to_be_replaced():
    """The workers share when one last began being replaced: the next waits until its
    fresh fork serves (which clears it), or a minute if that fork never came up."""
    from config import workers

    workers._REPLACING.value = 0.0
    try:
        assert workers._my_turn()
        assert not workers._my_turn()  # the first one's fork is not serving yet
        workers._REPLACING.value = time.monotonic() - 61
        assert workers._my_turn()
    finally:
        workers._REPLACING.value = 0.0
