"""Secrets at rest: proxy credentials encrypted and masked, the secret flag keeps its
meaning, and yesterday's database migrates forward with every secret readable and bound."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from integrations import services
from integrations.llm import inputs
from integrations.models import AuthProfile, Integration, IntegrationHeader
from tests.conftest import CANARY_HEADER
from tests.integrations.test_connection_views import HX
from tests.integrations.test_secret_origin import edit_payload

PROXY = "http://proxyuser:proxy-pass-7d2e9c41@127.0.0.1:3128"


def raw_column(table: str, column: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table}")
        return [row[0] for row in cursor.fetchall()]


def test_proxy_credentials_are_encrypted_and_never_shown(client, bob, make_integration):
    model = make_integration()
    Integration.objects.filter(pk=model.integration.pk).update(proxy_url=PROXY)
    assert "proxy-pass-7d2e9c41" not in str(raw_column("integrations_integration", "proxy_url"))
    integration = Integration.objects.get(pk=model.integration.pk)
    assert services.config_for(integration).proxy_url == PROXY
    client.force_login(bob)
    html = client.get(reverse("integration-edit", args=[integration.pk])).content.decode()
    assert "proxy-pass-7d2e9c41" not in html and "proxyuser:••••@127.0.0.1:3128" in html
    # Sent back as shown (masked), the stored value is kept, not replaced by the mask.
    form_data = edit_payload(model, proxy_url="http://proxyuser:••••@127.0.0.1:3128")
    from integrations.forms import ConnectionPage

    form = ConnectionPage(form_data, mode="integration", integration=integration, user=bob)
    form.is_valid()
    assert form.cleaned_data["proxy_url"] == PROXY


def test_a_secret_header_becomes_public_only_with_a_new_value(client, bob, make_integration):
    model = make_integration()
    header = model.integration.headers.get(name="X-Org-Secret")
    client.force_login(bob)
    url = reverse("integration-edit", args=[model.integration.pk])
    data = edit_payload(
        model,
        **{
            "headers-TOTAL_FORMS": "1",
            "headers-INITIAL_FORMS": "1",
            "headers-0-id": str(header.pk),
            "headers-0-name": "X-Org-Secret",
            "headers-0-value": "",
        },
    )
    response = client.post(url, {**data, "action": "draft"}, headers=HX)
    assert "Type a new value to make this header not secret" in response.content.decode()
    header.refresh_from_db()
    assert header.secret and header.value == CANARY_HEADER


@pytest.mark.django_db(transaction=True)
def test_yesterdays_database_migrates_forward_with_every_secret_readable_and_bound():
    before = [("integrations", "0003_team"), ("sandbox", "0001_initial")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    Profile = old.get_model("integrations", "AuthProfile")
    OldIntegration = old.get_model("integrations", "Integration")
    Header = old.get_model("integrations", "IntegrationHeader")
    Model = old.get_model("integrations", "CustomModel")
    Stored = old.get_model("integrations", "StoredSecret")
    bearer = Profile.objects.create(name="Key", kind="bearer", token="sk-yesterday-0123456789")
    oauth = Profile.objects.create(
        name="OAuth",
        kind="oauth2",
        token_url="https://login.example.com/token",
        client_id="c",
        client_secret="cs-yesterday-0123456789",
    )
    proxied = OldIntegration.objects.create(
        name="Proxied", endpoint="https://api.example.com/v1", auth_profile=bearer, proxy_url=PROXY
    )
    plain = OldIntegration.objects.create(
        name="Plain", endpoint="https://llm.example.org:8443/v1", auth_profile=oauth
    )
    Header.objects.create(integration=plain, name="X-Key", value="hv-yesterday-0123", secret=True)
    Model.objects.create(integration=proxied, name="M", model_id="m")
    Stored.objects.create(name="S", value="stored-yesterday-0123")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    bearer, oauth = AuthProfile.objects.get(name="Key"), AuthProfile.objects.get(name="OAuth")
    assert bearer.token == "sk-yesterday-0123456789"
    assert oauth.client_secret == "cs-yesterday-0123456789"
    proxied = Integration.objects.get(name="Proxied")
    assert proxied.proxy_url == PROXY
    assert "proxy-pass" not in str(raw_column("integrations_integration", "proxy_url"))
    assert bearer.bound_origins == [inputs.route("https://api.example.com/v1", PROXY)]
    assert sorted(oauth.bound_origins) == sorted(
        [inputs.route("https://llm.example.org:8443"), inputs.route("https://login.example.com")]
    )
    header = IntegrationHeader.objects.get(name="X-Key")
    assert header.value == "hv-yesterday-0123"
    assert header.bound_origins == ["https://llm.example.org:8443"]
    config = services.config_for(proxied)
    assert config.route() in config.auth.bound  # still works where it worked yesterday
