"""Usage rows are never lost for another's fault.

- A row the database would refuse (prices up to 999,999 per Mtok times counts up to
  2^31-1 overflowed the cost column) is fitted to its columns and lands.
- A batch the database refuses is written row by row: the other rows land.
- A worker killed with SIGKILL under load loses no row: each is on disk before its call
  is answered, and the next worker writes what the dead one had not.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from integrations.gateway import metering
from integrations.models import UsageDaily, UsageRecord
from tests.production import ProductionServer
from tests.upstream import reply_load

BIG = 2**31 - 1


def row(**fields) -> UsageRecord:
    values = {
        "created_at": timezone.now(),
        "source": "gateway",
        "model_name": "Model A",
        "ok": True,
        "spool_id": uuid.uuid4(),
    }
    return metering.fit(UsageRecord(**values | fields))


@pytest.mark.django_db(transaction=True)
def test_the_largest_price_times_the_largest_counts_is_stored_exactly(make_integration):
    model = make_integration(
        price_input_per_mtok=Decimal("999999.999999"),
        price_output_per_mtok=Decimal("999999.999999"),
    )
    cost = model.cost(BIG, BIG)
    assert metering.write([row(prompt_tokens=BIG, completion_tokens=BIG, cost=cost)]) == []
    stored = UsageRecord.objects.get()
    expected = cost.quantize(Decimal("1e-8"))
    if connection.vendor == "postgresql":
        assert stored.cost == expected
    else:  # SQLite keeps a decimal as a double: 15 or 16 significant digits
        assert abs(stored.cost - expected) < Decimal("0.0001")
    assert abs(UsageDaily.objects.get().cost - stored.cost) < Decimal("0.0001")


@pytest.mark.django_db(transaction=True)
def test_one_refused_row_does_not_take_the_batch_with_it(make_integration, bob, caplog):
    from integrations.gateway import keys

    model = make_integration()
    key, _ = keys.create(bob, "app")
    good = [row(key=key, model=model, prompt_tokens=i) for i in range(3)]
    bad = row(key_id=uuid.uuid4(), model=model)  # a key that does not exist
    dropped = metering.write([good[0], bad, good[1], good[2]])
    assert dropped == [bad]
    assert sorted(r.prompt_tokens for r in UsageRecord.objects.all()) == [0, 1, 2]
    assert UsageDaily.objects.get(key=key).requests == 3
    assert "refused and dropped" in caplog.text


def test_values_no_column_takes_are_fitted():
    fitted = row(latency_ms=10**12, status_code=99999, model_name="m" * 300, cost=Decimal("1e30"))
    assert fitted.latency_ms == BIG and fitted.status_code == 32767
    assert len(fitted.model_name) == 100 and fitted.cost < Decimal("1e12")


def test_a_worker_killed_with_sigkill_loses_no_usage_row(tmp_path, upstream):
    """Calls stream in from 8 threads; the worker is killed mid-load; gunicorn starts a
    new one, which writes what the dead one had on disk. Every call that was answered has
    its row (each prompt is unique and stored), and no call has two."""
    upstream.handler = reply_load(latency=0.02, tokens=3)
    server = ProductionServer(tmp_path, f"{upstream.url}/v1")
    server.start()
    answered: list[str] = []
    stop = threading.Event()

    def caller():
        with server.gateway(timeout=10) as gateway:
            while not stop.is_set():
                tag = uuid.uuid4().hex
                body = {"model": "Model A", "messages": [{"role": "user", "content": tag}]}
                try:
                    if gateway.post("/chat/completions", json=body).status_code == 200:
                        answered.append(tag)
                except Exception:
                    time.sleep(0.05)  # the killed worker's connections: try again

    threads = [threading.Thread(target=caller) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        while len(answered) < 150:
            time.sleep(0.01)
        (worker,) = server.workers()
        import os
        import signal

        os.kill(worker, signal.SIGKILL)
        while len(answered) < 300:  # the new worker serves
            time.sleep(0.01)
        stop.set()
        for t in threads:
            t.join(15)
    finally:
        stop.set()
        stderr = server.stop()
    with sqlite3.connect(server.database) as db:
        prompts = [r[0] for r in db.execute("select prompt from integrations_usagerecord")]
    tags = [p.split('"content": "')[1][:32] for p in prompts]
    missing = set(answered) - set(tags)
    assert not missing, f"{len(missing)} answered calls have no row; {stderr}"
    assert len(tags) == len(set(tags)), "a call was counted twice"
    assert len(tags) <= len(upstream.requests)
    assert not list((tmp_path / "spool").glob("*.jsonl")), "the spool was not emptied"
