"""Gateway keys in the UI and the API; the usage page, its CSV and its scope; pruning."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from integrations.gateway import keys, metering
from integrations.models import AuditEvent, GatewayKey, UsageDaily, UsageRecord


def test_an_editor_creates_a_key_shown_once_and_stored_hashed(client, bob, make_integration):
    model = make_integration()
    client.force_login(bob)
    html = client.post(
        reverse("gateway-keys"),
        {"name": "Support bot", "owner": bob.pk, "allowed": [model.pk], "rpm": "60",
         "monthly_budget": "12.5", "expires_in_days": "30"},
    ).content.decode()  # fmt: skip
    key = GatewayKey.objects.get()
    raw = html.split('<pre id="new-key">')[1].split("</pre>")[0]
    assert raw.startswith("sk-byo-") and key.digest == keys.digest(raw) and raw not in key.digest
    assert not key.all_models and list(key.allowed.all()) == [model]
    assert key.rpm == 60 and key.monthly_budget == Decimal("12.5") and key.expires_at
    assert AuditEvent.objects.filter(action="gateway_key_create").exists()
    again = client.get(reverse("gateway-keys")).content.decode()
    assert raw not in again and key.prefix in again
    client.post(reverse("gateway-key-revoke", args=[key.pk]))
    assert keys.authenticate(raw) is None


def test_an_editor_cannot_make_a_key_for_someone_else(client, bob, charlie):
    client.force_login(bob)
    html = client.post(
        reverse("gateway-keys"), {"name": "x", "owner": charlie.pk, "all_models": "on"}
    ).content.decode()
    assert "Select a valid choice" in html and not GatewayKey.objects.exists()


def test_a_key_needs_models_or_all(client, bob):
    client.force_login(bob)
    html = client.post(reverse("gateway-keys"), {"name": "x", "owner": bob.pk}).content.decode()
    assert "Pick the models or routes it may call" in html and not GatewayKey.objects.exists()


def test_the_api_creates_lists_and_revokes_keys(
    client, bob, charlie, alice, api_token, make_integration
):
    model = make_integration()
    auth = {"Authorization": f"Bearer {api_token(bob)}"}
    created = client.post(
        "/api/v2/gateway-keys",
        {"name": "ci", "models": [str(model.pk)], "tpm": 1000},
        content_type="application/json",
        headers=auth,
    )
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("sk-byo-") and body["models"] == [str(model.pk)]
    listed = client.get("/api/v2/gateway-keys", headers=auth).json()
    assert [k["name"] for k in listed] == ["ci"] and "key" not in listed[0]
    refused = client.post(
        "/api/v2/gateway-keys",
        {"name": "x", "owner": "charlie"},
        content_type="application/json",
        headers=auth,
    )
    assert refused.status_code == 403  # an Editor makes keys only for themselves
    bad = client.post(
        "/api/v2/gateway-keys", {"name": "x", "models": ["nope"]},
        content_type="application/json", headers=auth,
    )  # fmt: skip
    assert bad.status_code == 422
    member = client.get(
        "/api/v2/gateway-keys", headers={"Authorization": f"Bearer {api_token(charlie)}"}
    )
    assert member.status_code == 403
    assert client.delete(f"/api/v2/gateway-keys/{body['id']}", headers=auth).status_code == 204
    assert keys.authenticate(body["key"]) is None


def _usage(key, model, day_offset=0, ok=True, latency=120, cost="0.5", user=None):
    row = UsageRecord(
        created_at=timezone.now() - timedelta(days=day_offset),
        source="gateway" if key else "sandbox",
        key=key,
        user=user or (key.owner if key else None),
        model=model,
        model_name=model.name,
        prompt_tokens=10,
        completion_tokens=5,
        cost=Decimal(cost),
        latency_ms=latency,
        ok=ok,
        error_kind="" if ok else "timeout",
    )
    row.save()
    metering.roll_up(row)


def test_the_usage_page_charts_per_day_by_model_and_key(client, alice, bob, make_integration):
    model = make_integration()
    key, _ = keys.create(bob, "bot")
    for offset in (0, 0, 1):
        _usage(key, model, offset)
    _usage(key, model, 0, ok=False, latency=3000)
    _usage(None, model, 0, user=alice)
    client.force_login(alice)
    html = client.get(reverse("usage"), {"range": "7"}).content.decode()
    assert html.count('<svg class="chart"') == 6
    assert "Requests per day" in html and "Latency per day" in html
    assert "bot (" in html and "Sandbox" in html  # by key: the key, and Sandbox runs
    assert "<dd>5</dd>" in html  # requests in the range
    daily = UsageDaily.objects.get(day=timezone.localdate(), key=key)
    assert (daily.requests, daily.errors, daily.h2, daily.h6) == (3, 1, 2, 1)


def test_an_owner_sees_only_their_keys(client, bob, charlie, alice, make_integration):
    model = make_integration()
    mine, _ = keys.create(charlie, "mine")
    theirs, _ = keys.create(bob, "theirs")
    _usage(mine, model)
    _usage(theirs, model)
    client.force_login(charlie)
    html = client.get(reverse("usage")).content.decode()
    assert "mine (" in html and "theirs (" not in html
    assert "<dd>1</dd>" in html


def test_the_usage_page_takes_a_constant_number_of_queries(client, alice, make_integration):
    model = make_integration()
    key, _ = keys.create(alice, "k")
    client.force_login(alice)
    counts = []
    for rows in (1, 40):
        for i in range(rows):
            _usage(key, model, i % 20)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("usage"), {"range": "30"}).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_the_csv_export_has_a_row_per_day_key_and_model(client, alice, make_integration):
    model = make_integration(name="=cmd")  # a name a spreadsheet would run
    key, _ = keys.create(alice, "+formula")
    _usage(key, model, 0)
    _usage(key, model, 1)
    client.force_login(alice)
    response = client.get(reverse("usage-csv"), {"range": "7"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:4] == ["day", "source", "key", "model"]
    assert len(rows) == 3 and rows[1][2] == "'+formula" and rows[1][4] == "1"


def test_prune_usage_deletes_old_rows_and_keeps_the_totals(db, alice, make_integration, settings):
    model = make_integration()
    key, _ = keys.create(alice, "k")
    _usage(key, model, 100)
    _usage(key, model, 1)
    settings.USAGE_RETENTION_DAYS = 90
    call_command("prune_usage")
    assert UsageRecord.objects.count() == 1
    assert UsageDaily.objects.count() == 2


def test_an_editor_sets_a_gateway_alias_on_the_model_form(client, bob, make_integration, upstream):
    from integrations.models import CustomModel
    from tests.integrations.test_connection_views import passing_receipt

    model = make_integration()
    client.force_login(bob)
    url = reverse("model-edit", args=[model.pk])
    page = client.get(url).content.decode()
    assert 'name="gateway_alias"' in page
    data = {
        "model_name": "Model A",
        "model_id": "test-model",
        "test_max_tokens": "16",
        "gateway_alias": "gpt-4o-mini",
        "request_template": "",
    }
    receipt = passing_receipt(client, url, data)
    client.post(url, {**data, "action": "save", "test_receipt": receipt})
    assert CustomModel.objects.get(pk=model.pk).gateway_alias == "gpt-4o-mini"
    bad = client.post(url, {**data, "gateway_alias": "has space", "action": "test"})
    assert "no spaces" in bad.content.decode()


def test_an_editor_edits_a_keys_limits_budget_and_expiry_and_it_is_audited(
    client, bob, make_integration
):
    from integrations.models import AuditEvent, GatewayKey

    model = make_integration()
    key, _ = keys.create(bob, "app", rpm=5)
    client.force_login(bob)
    page = client.get(reverse("gateway-key-edit", args=[key.pk])).content.decode()
    assert 'value="app"' in page and 'value="5"' in page
    response = client.post(reverse("gateway-key-edit", args=[key.pk]), {
        "name": "support bot", "owner": bob.pk, "allowed": [model.pk], "rpm": "10",
        "monthly_budget": "0.0005", "expires_on": "2030-01-31",
    })  # fmt: skip
    assert response.status_code == 302
    key = GatewayKey.objects.get(pk=key.pk)
    assert (key.name, key.rpm, str(key.monthly_budget), key.all_models) == (
        "support bot",
        10,
        "0.0005",
        False,
    )
    assert list(key.allowed.all()) == [model] and key.expires_at.date().isoformat() == "2030-01-31"
    event = AuditEvent.objects.filter(action="update").latest("created_at")
    assert event.changes["rpm"] == ["5", "10"] and event.changes["name"] == ["app", "support bot"]
    listed = client.get(reverse("gateway-keys")).content.decode()
    assert "$0.0005/month" in listed and "($0.0005 left)" in listed


def test_revoke_asks_first(client, bob):
    from integrations.models import GatewayKey

    key, _ = keys.create(bob, "app")
    client.force_login(bob)
    page = client.get(reverse("gateway-key-revoke", args=[key.pk])).content.decode()
    assert "Revoke gateway key “app”?" in page
    assert GatewayKey.objects.get(pk=key.pk).revoked_at is None
    client.post(reverse("gateway-key-revoke", args=[key.pk]))
    assert GatewayKey.objects.get(pk=key.pk).revoked_at is not None
