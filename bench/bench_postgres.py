"""5. PostgreSQL under load: 256 simultaneous calls on a 1 s upstream, production config.

Before the pool, each of 2 workers x 64 threads kept its own connection and 177 of 256
calls failed with "too many clients". Printed: errors (target 0), wall time against the
upstream's own 1 s, and the connections the console holds after the burst, against
what the pool allows (workers x DB_POOL_MAX_SIZE). Uses a fresh database `bench_pool`.
"""

from __future__ import annotations

import os
import sys

import psycopg

ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = "bench_pool"


def fresh_database() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")


# The upstream's process (spawned) imports this module again: only the script itself
# may recreate the database.
if __name__ == "__main__":
    fresh_database()
os.environ["BENCH_DATABASE_URL"] = ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"

from bench_concurrency import run_many  # noqa: E402
from common import (  # noqa: E402
    Gunicorn,
    UpstreamProcess,
    make_model,
    make_user,
    percentiles,
    prepare_database,
    save,
    table,
)

CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 256
WORKERS = 2
THREADS = 128  # every call in flight has a thread; the database does not need as many


def held_connections() -> int:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [DATABASE]
        ).fetchone()
    return row[0]


def max_connections() -> int:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        return int(conn.execute("SHOW max_connections").fetchone()[0])


def main() -> dict:
    from django.conf import settings
    from django.db import connections

    prepare_database()
    upstream = UpstreamProcess(latency=1.0)
    user = make_user()
    model = make_model("One second", f"{upstream.url}/v1")
    from integrations.team import tokens

    token = tokens.create(user, "bench")[1]
    connections.close_all()
    connections["default"].close_pool()  # this script's own connections are not the server's
    pool_max = settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]
    # Keep-alive longer than it takes 256 client threads to line up at the barrier.
    server = Gunicorn(
        {
            "WEB_CONCURRENCY": str(WORKERS),
            "GUNICORN_THREADS": str(THREADS),
            "GUNICORN_KEEPALIVE": "60",
        }
    )
    results: dict = {"max_connections": max_connections(), "pool_max_per_worker": pool_max}
    rows = []
    try:
        for phase in ("first burst", "second burst"):
            load = os.getloadavg()[0]
            wall, statuses, latencies = run_many(server.url, token, str(model.pk), CALLS)
            errors = CALLS - statuses.count(200)  # a client that got no answer failed too
            held = held_connections()
            lat = percentiles(latencies)
            results[phase] = {
                "calls": CALLS,
                "errors": errors,
                "wall_s": round(wall, 3),
                "latency_ms": lat,
                "connections_after": held,
                "load_avg_1m": round(load, 2),
            }
            rows.append(
                [phase, CALLS, errors, f"{wall:.2f}", lat["p50"], lat["p99"], held, f"{load:.2f}"]
            )
    finally:
        server.stop()
        upstream.stop()
    table(
        f"{CALLS} simultaneous calls on PostgreSQL, 1 s upstream, {WORKERS} workers x {THREADS} "
        f"threads (target: 0 errors; connections <= {WORKERS} x {pool_max} = {WORKERS * pool_max})",
        rows,
        ["burst", "calls", "errors", "wall s", "p50 ms", "p99 ms", "connections", "load 1m"],
    )
    return results


if __name__ == "__main__":
    save("postgres", main())
