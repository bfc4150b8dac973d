"""Cache validity survives a Redis restart: a change made after it is never undone.

The generation was a counter. A restart reset it, and once another process had made
enough changes to bring it back to the value a worker had cached, that worker's stale
copies matched again: a revoked key answered 200 forty times out of forty. Here a real
Redis of the test's own is restarted, another console process makes the change and then
up to 50 more (stopping if the generation ever comes back to the one this worker cached),
and this process's gateway, which has not been called since, refuses.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from integrations import callcache
from integrations.gateway import keys
from tests.conftest import OtherProcess

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"model": "Model A", "messages": [{"role": "user", "content": "hi"}]}


def call(raw: str) -> int:
    client = Client(headers={"Authorization": f"Bearer {raw}"})
    return client.post("/v1/chat/completions", BODY, content_type="application/json").status_code


CHANGES = {
    "revoked key": (
        "from integrations.gateway import keys\n"
        "from integrations.models import GatewayKey\n"
        "keys.revoke(GatewayKey.objects.get(pk='{key}'))",
        401,
    ),
    "deactivated owner": (
        "from django.contrib.auth import get_user_model\n"
        "user = get_user_model().objects.get(username='bob')\n"
        "user.is_active = False\n"
        "user.save()",
        401,
    ),
    "disabled model": (
        "from integrations.models import CustomModel\n"
        "model = CustomModel.objects.get(pk='{model}')\n"
        "model.enabled = False\n"
        "model.save()",
        404,
    ),
    "moved configuration": (
        "from integrations.models import Integration\n"
        "Integration.objects.filter(pk='{integration}').update(endpoint='http://127.0.0.1:9/v1')\n"
        "from integrations import callcache\n"
        "callcache.bump()",
        502,
    ),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_after_a_redis_restart_holds_through_many_more(
    change, private_redis, make_integration, bob
):
    model = make_integration()
    key, raw = keys.create(bob, "app")
    assert call(raw) == 200  # this worker now keeps the key, the name and the model
    cached = cache.get(callcache.GENERATION_KEY)
    private_redis.restart()  # the generation goes with everything else
    other = OtherProcess(private_redis.url)
    try:
        code, refused = CHANGES[change]
        other.run(code.format(key=key.pk, model=model.pk, integration=model.integration.pk))
        came_back = other.run(
            "from django.core.cache import cache\n"
            "from integrations import callcache\n"
            "for _ in range(50):\n"
            f"    if cache.get(callcache.GENERATION_KEY) == {cached!r}:\n"
            "        print('came back')\n"
            "        break\n"
            "    callcache.bump()\n"
        )
    finally:
        other.close()
    assert came_back == ""
    assert call(raw) == refused
