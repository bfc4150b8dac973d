"""3. Pages at scale: 1,000 integrations, 5,000 models, 50,000 tests, 100,000 Sandbox runs,
and 1,000,000 usage rows (90 days, 20 gateway keys, 50 models) for the usage page.

Each page is rendered in-process (no network) 30 times; the table shows p50/p95 and the
number of SQL queries, which must not grow with the data (tests assert that in CI).
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import timedelta

from common import ENV, make_user, percentiles, prepare_database, save, table

ENV["ALLOWED_HOSTS"] = "testserver"
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

settings.ALLOWED_HOSTS = ["testserver"]

INTEGRATIONS, MODELS_EACH, TESTS, RUNS, USERS = 1000, 5, 50_000, 100_000, 10
USAGE_ROWS, USAGE_DAYS, USAGE_KEYS, USAGE_MODELS = 1_000_000, 90, 20, 50
REPEAT = 30


def populate() -> dict:
    from integrations.models import AuthKind, AuthProfile, ConnectionTest, CustomModel, Integration
    from sandbox.models import SandboxRun

    rng = random.Random(1)
    started = time.perf_counter()
    users = [make_user(f"user{i}", "Editor" if i == 0 else "Member") for i in range(USERS)]
    profile = AuthProfile.objects.create(
        name="Shared key", kind=AuthKind.BEARER, token="sk-scale-000000000000"
    )
    integrations = Integration.objects.bulk_create(
        Integration(
            name=f"Integration {i:04}",
            endpoint=f"https://llm{i}.example.com/v1",
            auth_profile=profile,
        )
        for i in range(INTEGRATIONS)
    )
    models = CustomModel.objects.bulk_create(
        CustomModel(
            integration=integ,
            name=f"Model {j}",
            model_id=f"model-{i}-{j}",
            last_test_status=rng.choice(["passing", "failing", "never"]),
        )
        for i, integ in enumerate(integrations)
        for j in range(MODELS_EACH)
    )
    now = timezone.now()
    for start in range(0, TESTS, 10_000):
        ConnectionTest.objects.bulk_create(
            ConnectionTest(
                integration_id=(m := models[k % len(models)]).integration_id,
                model=m,
                user=users[k % USERS],
                config_hash=uuid.uuid4().hex,
                ok=k % 7 != 0,
                status_code=200,
                latency_ms=rng.randint(80, 900),
                request={
                    "method": "POST",
                    "url": "https://x/v1/chat/completions",
                    "headers": {},
                    "body": {},
                },
                response_excerpt='{"choices": []}',
            )
            for k in range(start, min(TESTS, start + 10_000))
        )
    for start in range(0, RUNS, 10_000):
        SandboxRun.objects.bulk_create(
            SandboxRun(
                user=users[k % USERS],
                model=(m := models[k % len(models)]),
                model_name=m.name,
                integration_name=f"Integration {(k % len(models)) // MODELS_EACH:04}",
                user_prompt="Summarize this paragraph about token usage. " * 5,
                reply="A reply that is long enough to be truncated in the list. " * 10,
                status="ok",
                prompt_tokens=50,
                completion_tokens=120,
                total_tokens=170,
                latency_ms=rng.randint(200, 3000),
                created_at=now - timedelta(seconds=k),
            )
            for k in range(start, min(RUNS, start + 10_000))
        )
    keys = populate_usage(users, models, rng, now)
    print(f"populated in {time.perf_counter() - started:.1f} s")
    return {"users": users, "integration": integrations[500], "models": models, "keys": keys}


def populate_usage(users, models, rng, now):
    """A million usage rows, and the daily totals that metering.roll_up keeps for them."""
    import bisect
    from collections import defaultdict
    from decimal import Decimal

    from integrations.gateway import keys as gateway_keys
    from integrations.models import UsageDaily, UsageRecord
    from integrations.models.gateway import LATENCY_BOUNDS

    keys = [gateway_keys.create(users[k % USERS], f"key {k}")[0] for k in range(USAGE_KEYS)]
    totals: dict = defaultdict(lambda: defaultdict(int))
    batch = []
    for k in range(USAGE_ROWS):
        key, model = keys[k % USAGE_KEYS], models[(k * 7) % USAGE_MODELS]
        when = now - timedelta(seconds=k * USAGE_DAYS * 86400 // USAGE_ROWS)
        latency = rng.randint(100, 4000)
        ok = k % 23 != 0
        row = UsageRecord(
            created_at=when, source="gateway", key=key, user_id=key.owner_id, model=model,
            model_name=model.name, prompt_tokens=120, completion_tokens=80,
            cost=Decimal("0.00012"), latency_ms=latency, ok=ok,
        )  # fmt: skip
        batch.append(row)
        slot = (timezone.localdate(when), key.pk, key.owner_id, model.name)
        t = totals[slot]
        t["requests"] += 1
        t["errors"] += 0 if ok else 1
        t["prompt_tokens"] += 120
        t["completion_tokens"] += 80
        t["cost"] += Decimal("0.00012")
        t[f"h{bisect.bisect_right(LATENCY_BOUNDS, latency)}"] += 1
        if len(batch) == 50_000:
            UsageRecord.objects.bulk_create(batch)
            batch = []
    UsageRecord.objects.bulk_create(batch)
    UsageDaily.objects.bulk_create(
        UsageDaily(
            slot=f"{day}|gateway|{key_id}|{user_id}|{name}",
            day=day,
            source="gateway",
            key_id=key_id,
            user_id=user_id,
            model_name=name,
            **t,
        )  # fmt: skip
        for (day, key_id, user_id, name), t in totals.items()
    )
    return keys


def measure(client: Client, url: str, **headers) -> tuple[dict, int]:
    client.get(url, headers=headers)  # warm the template and query caches
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return percentiles(times), len(queries)


def main() -> dict:
    prepare_database()
    data = populate()
    from integrations.team import tokens

    editor, member = data["users"][0], data["users"][1]
    admin = make_user("scale-admin", "Admin")
    token = tokens.create(editor, "scale")[1]
    pages = [
        ("catalog", "/", editor, {}),
        ("catalog, search", "/?q=Model+3&status=passing", editor, {}),
        ("catalog, page 40", "/?page=40", editor, {}),
        ("integration detail", f"/integrations/{data['integration'].pk}/", editor, {}),
        ("history, all runs (editor)", "/sandbox/history/", editor, {}),
        ("history, own runs (member)", "/sandbox/history/", member, {}),
        ("GET /api/v2/llms", "/api/v2/llms", None, {"Authorization": f"Bearer {token}"}),
        (
            "GET /api/v2/llms, offset 4000",
            "/api/v2/llms?offset=4000",
            None,
            {"Authorization": f"Bearer {token}"},
        ),
    ]
    pages += [
        ("usage page, 90 days, 1M usage rows (admin)", "/usage/?range=90", admin, {}),
        ("usage page, 30 days (a key owner)", "/usage/?range=30", member, {}),
        ("usage CSV, 90 days (admin)", "/usage.csv?range=90", admin, {}),
    ]
    results, rows = {}, []
    for label, url, user, headers in pages:
        client = Client()
        if user is not None:
            client.force_login(user)
        timing, queries = measure(client, url, **headers)
        results[label] = {"ms": timing, "queries": queries}
        rows.append([label, timing["p50"], timing["p95"], queries])
    table(
        f"Pages with {INTEGRATIONS} integrations, {INTEGRATIONS * MODELS_EACH} models, {TESTS} tests, {RUNS} runs (target p50 <= 50 ms)",
        rows,
        ["page", "p50 ms", "p95 ms", "queries"],
    )
    return results


if __name__ == "__main__":
    save("scale", main())
