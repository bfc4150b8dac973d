"""Export and import: no secrets unless asked, round trips, idempotence; check_models."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from integrations import transfer
from integrations.models import AuthProfile, CustomModel, Integration, IntegrationHeader
from tests.conftest import CANARY, CANARY_HEADER
from tests.upstream import reply_json


def wipe() -> None:
    Integration.objects.all().delete()
    AuthProfile.objects.all().delete()


def test_an_export_without_secrets_contains_none(make_integration):
    make_integration(request_template={"model": "{{model}}", "messages": "{{messages}}"})
    text = json.dumps(transfer.export())
    assert CANARY not in text and CANARY_HEADER not in text
    data = json.loads(text)
    assert data["secrets"] == "omitted"
    assert data["integrations"][0]["headers"][0] == {
        "name": "X-Org-Secret",
        "secret": True,
        "value": None,
    }
    assert data["integrations"][0]["headers"][1] == {
        "name": "X-Team",
        "secret": False,
        "value": "research",
    }


def test_export_then_import_into_an_empty_database_reproduces_the_configuration(make_integration):
    model = make_integration(price_input_per_mtok="1.5", max_tokens=300)
    before = transfer.export()
    wipe()
    report = transfer.import_data(json.loads(json.dumps(before)))
    assert len(report.created) == 3  # profile, integration, model
    after = transfer.export()
    # Without its secrets the model cannot pass a test: it comes back disabled, and says why.
    assert after["integrations"][0]["models"][0].pop("enabled") is False
    before["integrations"][0]["models"][0].pop("enabled")
    assert after["integrations"] == before["integrations"]
    assert report.disabled == [
        "model Local / Model A (saved disabled: The test failed: The auth profile has no "
        "key: enter it in the profile.)"
    ]
    # Everything but the omitted secrets, which the report lists as missing.
    strip = [{k: v for k, v in p.items() if k != "secrets"} for p in after["auth_profiles"]]
    assert strip == [
        {k: v for k, v in p.items() if k != "secrets"} for p in before["auth_profiles"]
    ]
    assert report.missing_secrets == [
        "auth profile Local key: token",
        "integration Local: header X-Org-Secret",
    ]
    imported = CustomModel.objects.get(name=model.name)
    assert imported.last_test_status == "never"


def test_an_encrypted_export_round_trips_its_secrets(make_integration):
    make_integration()
    data = transfer.export(include_secrets=True, passphrase="correct horse battery")
    text = json.dumps(data)
    assert CANARY not in text and CANARY_HEADER not in text and data["secrets"] == "encrypted"
    wipe()
    with pytest.raises(transfer.TransferError, match="Wrong passphrase"):
        transfer.import_data(json.loads(text), "wrong passphrase!")
    assert not Integration.objects.exists()  # nothing half-imported
    report = transfer.import_data(json.loads(text), "correct horse battery")
    assert report.missing_secrets == []
    assert AuthProfile.objects.get().token == CANARY
    assert IntegrationHeader.objects.get(secret=True).value == CANARY_HEADER


def test_import_is_idempotent_and_reports_updates(make_integration):
    make_integration()
    data = transfer.export(include_secrets=True, passphrase="passphrase-1")
    report = transfer.import_data(data, "passphrase-1")
    assert report.created == [] and report.updated == [] and len(report.skipped) == 3
    data["integrations"][0]["description"] = "changed"
    report = transfer.import_data(data, "passphrase-1")
    assert report.updated == ["integration Local"]


def test_import_asks_for_missing_secrets(make_integration):
    make_integration()
    data = transfer.export()
    wipe()
    transfer.import_data(data, ask_secret=lambda label: f"typed-for-{label.split(':')[-1].strip()}")
    assert AuthProfile.objects.get().token == "typed-for-token"


def test_the_commands_export_and_import(make_integration, tmp_path, monkeypatch):
    make_integration()
    path = tmp_path / "llms.json"
    call_command("export_llms", "--output", str(path), stderr=io.StringIO())
    assert CANARY not in path.read_text()
    monkeypatch.setenv("EXPORT_PASSPHRASE", "a-good-passphrase")
    secret_path = tmp_path / "with-secrets.json"
    call_command(
        "export_llms", "--include-secrets", "--output", str(secret_path), stderr=io.StringIO()
    )
    wipe()
    out = io.StringIO()
    call_command("import_llms", str(secret_path), "--no-input", stdout=out)
    assert "Created 3" in out.getvalue()
    assert AuthProfile.objects.get().token == CANARY
    with pytest.raises(CommandError, match="not a console export"):
        bad = tmp_path / "bad.json"
        bad.write_text('{"hello": 1}')
        call_command("import_llms", str(bad), "--no-input")


def test_admins_export_and_import_in_the_ui(client, alice, make_integration):
    make_integration()
    client.force_login(alice)
    response = client.post(reverse("export-import"), {"action": "export"})
    assert response["Content-Disposition"].startswith("attachment")
    exported = response.content
    assert CANARY.encode() not in exported
    wipe()
    upload = io.BytesIO(exported)
    upload.name = "llms.json"
    html = client.post(
        reverse("export-import"), {"action": "import", "file": upload}
    ).content.decode()
    assert "Created 3" in html and Integration.objects.filter(name="Local").exists()
    bad = io.BytesIO(b"not json")
    bad.name = "x.json"
    html = client.post(reverse("export-import"), {"action": "import", "file": bad}).content.decode()
    assert "Not a valid export file" in html


def test_check_models_prints_a_table_and_fails_on_a_failure(make_integration, upstream):
    model = make_integration()
    out = io.StringIO()
    call_command("check_models", stdout=out)
    assert "1 passed, 0 failed" in out.getvalue() and "Model A" in out.getvalue()
    upstream.handler = reply_json({"error": "down"}, status=503)
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 model"):
        call_command("check_models", "--disable-failing", stdout=out)
    assert "FAILED server_error" in out.getvalue()
    model.refresh_from_db()
    assert not model.enabled and model.tests.count() == 2
    from integrations.models import AuditEvent

    events = AuditEvent.objects.filter(action="test", object_id=str(model.pk))
    assert events.count() == 2 and {e.username for e in events} == {""}  # the system


def test_a_proxy_url_with_credentials_is_treated_as_a_secret(make_integration):
    model = make_integration()
    Integration.objects.filter(pk=model.integration.pk).update(
        proxy_url="http://u:proxy-pass-123@proxy.local:3128"
    )
    assert "proxy-pass-123" not in json.dumps(transfer.export())
    sealed = transfer.export(include_secrets=True, passphrase="passphrase-2")
    assert "proxy-pass-123" not in json.dumps(sealed)
    wipe()
    transfer.import_data(sealed, "passphrase-2")
    assert Integration.objects.get().proxy_url == "http://u:proxy-pass-123@proxy.local:3128"


@pytest.mark.parametrize(
    "where, value, says",
    [
        ("endpoint", "http://[::1", "not a valid URL"),
        ("endpoint", "http://xn--a.invalid/v1", "not a valid host"),
        ("header", "Content-Length", "set by the client"),
        ("header_value", "line\nbreak", "printable ASCII"),
        ("template", {"a": "\x00"}, "NUL"),
    ],
)
def test_import_applies_the_edge_rules_and_writes_nothing(make_integration, where, value, says):
    make_integration()
    data = transfer.export()
    wipe()
    entry = data["integrations"][0]
    if where == "endpoint":
        entry["endpoint"] = value
    elif where == "header":
        entry["headers"][1]["name"] = value
    elif where == "header_value":
        entry["headers"][1]["value"] = value
    else:
        entry["request_template"] = value
    with pytest.raises(transfer.TransferError, match=says):
        transfer.import_data(data)
    assert not Integration.objects.exists() and not AuthProfile.objects.exists()


def test_imported_secrets_are_bound_to_the_imported_endpoints(make_integration, upstream):
    from integrations import services
    from integrations.llm import inputs

    make_integration()
    data = transfer.export(include_secrets=True, passphrase="correct horse battery")
    wipe()
    transfer.import_data(data, passphrase="correct horse battery")
    integration = Integration.objects.get(name="Local")
    assert integration.auth_profile.bound_origins == [inputs.route(upstream.url)]
    assert services.config_for(integration).headers[0].bound == {inputs.route(upstream.url)}


def test_stored_secrets_and_their_references_travel_in_an_encrypted_export(
    client, bob, api_token, upstream
):
    from integrations.models import StoredSecret
    from tests.integrations.test_api import Api

    api = Api(client, api_token(bob))
    _, secret = api.call(
        "post", "secrets", {"secret_name": "k", "secret_value": CANARY, "origins": [upstream.url]}
    )
    payload = {
        "type": "openai-compatible",
        "name": "Live",
        "model": "m",
        "uri": f"{upstream.url}/v1",
        "auth": {"type": "bearer", "secret_id": secret["secret_id"]},
    }
    assert api.call("post", "llms", payload)[0] == 201
    data = transfer.export(include_secrets=True, passphrase="correct horse battery")
    assert CANARY not in json.dumps(data) and data["stored_secrets"][0]["value"]
    wipe()
    StoredSecret.objects.all().delete()
    report = transfer.import_data(data, "correct horse battery")
    assert report.missing_secrets == [] and report.disabled == []
    profile = AuthProfile.objects.get()
    assert profile.stored_secret.value == CANARY and profile.token == ""
    assert CustomModel.objects.get().enabled


def test_routes_round_trip_through_export_and_import_with_their_targets_tested(
    make_integration, users, upstream
):
    from integrations.models import Route, RouteTarget

    model = make_integration(auth_kind="none")
    route = Route.objects.create(name="steady", strategy="weighted", cooldown_seconds=12)
    RouteTarget.objects.create(route=route, model=model, position=0, weight=3)
    data = json.loads(json.dumps(transfer.export()))
    assert data["routes"][0]["targets"] == [
        {"integration": "Local", "model": "Model A", "role": "main", "weight": 3}
    ]
    route.delete()
    report = transfer.import_data(data, user=users["admin"])
    assert "route steady" in report.created
    made = Route.objects.get(name="steady")
    assert (made.strategy, made.cooldown_seconds) == ("weighted", 12)
    target = made.targets.get()
    assert (target.model_id, target.weight, target.last_test_ok) == (model.pk, 3, True)
    again = transfer.import_data(data, user=users["admin"])
    assert "route steady" in again.skipped
    from tests.upstream import reply_json

    Route.objects.all().delete()
    upstream.handler = reply_json({"error": {"message": "down"}}, status=503)
    refused = transfer.import_data(data, user=users["admin"])
    assert any(s.startswith("route steady (not imported:") for s in refused.skipped)
    assert not Route.objects.exists()
