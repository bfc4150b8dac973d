"""Pages keep a constant number of SQL queries however much data there is.

Each page is fetched with a small and a larger data set; the counts must be equal and
under a fixed bound. (Timings at full scale live in bench/bench_scale.py.)
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations.models import ConnectionTest, CustomModel, Integration
from sandbox.models import SandboxRun


def grow(model: CustomModel, users, n: int) -> None:
    integrations = Integration.objects.bulk_create(
        Integration(name=f"Grown {n}-{i}", endpoint="https://x.example/v1") for i in range(n)
    )
    CustomModel.objects.bulk_create(
        CustomModel(integration=integ, name=f"M{j}", model_id=f"m{j}")
        for integ in integrations
        for j in range(3)
    )
    ConnectionTest.objects.bulk_create(
        ConnectionTest(
            integration=model.integration,
            model=model,
            user=users["editor"],
            ok=True,
            config_hash="x",
        )
        for _ in range(n * 5)
    )
    SandboxRun.objects.bulk_create(
        SandboxRun(
            user=u,
            model=model,
            model_name="Model A",
            integration_name="Local",
            user_prompt="p",
            reply="r",
            status="ok",
        )
        for _ in range(n * 5)
        for u in users.values()
    )


def count(client, url: str, **headers) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, headers=headers)
    assert response.status_code == 200, url
    return len(queries)


@pytest.mark.parametrize(
    "page, bound",
    [
        ("catalog", 8),
        ("detail", 10),
        ("history-editor", 8),
        ("history-member", 8),
        ("api-list", 5),
        ("tests-page", 10),
    ],
)
def test_queries_do_not_grow_with_the_data(client, users, make_integration, api_token, page, bound):
    model = make_integration()
    token = api_token(users["editor"])
    urls = {
        "catalog": (reverse("home"), users["member"], {}),
        "detail": (reverse("integration-detail", args=[model.integration.pk]), users["member"], {}),
        "history-editor": (reverse("sandbox-history"), users["editor"], {}),
        "history-member": (reverse("sandbox-history"), users["member"], {}),
        "api-list": ("/api/v2/llms", None, {"Authorization": f"Bearer {token}"}),
        "tests-page": (
            reverse("integration-detail", args=[model.integration.pk]) + "?page=2",
            users["member"],
            {},
        ),
    }
    url, user, headers = urls[page]
    if user is not None:
        client.force_login(user)
    grow(model, users, 10)
    count(client, url, **headers)  # first use: session and token bookkeeping
    small = count(client, url, **headers)
    grow(model, users, 60)
    large = count(client, url, **headers)
    assert small == large, f"{page}: {small} queries with less data, {large} with more"
    assert large <= bound


def test_auth_profile_lists_do_not_grow_with_stored_secret_references(client, users, api_token):
    from integrations.models import AuthProfile, StoredSecret

    def add(n: int, start: int) -> None:
        for i in range(start, start + n):
            secret = StoredSecret.objects.create(name=f"s{i}", value=f"value-{i}-0123456789")
            AuthProfile.objects.create(name=f"p{i}", kind="bearer", stored_secret=secret)

    token = api_token(users["editor"])
    client.force_login(users["member"])
    pages = [
        (reverse("auth-profiles"), {}),
        ("/api/v2/auth-profiles", {"Authorization": f"Bearer {token}"}),
    ]
    add(2, 0)
    for url, headers in pages:
        count(client, url, **headers)
    small = [count(client, url, **headers) for url, headers in pages]
    add(10, 2)
    large = [count(client, url, **headers) for url, headers in pages]
    assert small == large, (small, large)
