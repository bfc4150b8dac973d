"""Every name /v1/models lists resolves; a name two models share is refused by naming both.

The round-3 audit saw /v1/models list Dup1/dup and Dup2/dup, and every one of those
names answer 404 (the composite name was worked out among the one matching model only,
where it was not needed, so it was never found).
"""

from __future__ import annotations

import pytest
from django.test import Client

from integrations.gateway import keys

pytestmark = pytest.mark.django_db


def gateway(raw: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {raw}"})


def chat(raw: str, model: str):
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return gateway(raw).post("/v1/chat/completions", body, content_type="application/json")


def test_two_integrations_with_the_same_model_name(make_integration, bob, upstream):
    make_integration(name="Dup1", name_suffix="dup", model_id="one")
    make_integration(name="Dup2", name_suffix="dup", model_id="two")
    make_integration(name="Solo", name_suffix="solo", model_id="three", gateway_alias="fast")
    _, raw = keys.create(bob, "app")
    listed = [m["id"] for m in gateway(raw).get("/v1/models").json()["data"]]
    assert sorted(listed) == ["Dup1/Model dup", "Dup2/Model dup", "Model solo", "fast"]
    for name, sent in [("Dup1/Model dup", "one"), ("Dup2/Model dup", "two"), ("fast", "three")]:
        assert chat(raw, name).status_code == 200, name
        assert upstream.requests[-1].json()["model"] == sent
    # A composite name resolves even where the plain name is unique.
    assert chat(raw, "Solo/Model solo").status_code == 200
    refused = chat(raw, "Model dup")
    assert refused.status_code == 404
    message = refused.json()["error"]["message"]
    assert "'Dup1/Model dup'" in message and "'Dup2/Model dup'" in message
