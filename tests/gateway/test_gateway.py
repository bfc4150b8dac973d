"""The OpenAI-compatible gateway, driven by the official openai SDK against a live server:
keys and their scopes, limits under concurrency, streams, translation, metering."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal

import httpx
import openai
import pytest
from django.utils import timezone

from integrations.gateway import keys
from integrations.models import CustomModel, UsageRecord
from tests.conftest import CANARY, CANARY_HEADER
from tests.gateway.crowd import burst
from tests.upstream import openai_reply, reply_json, reply_sse

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gateway(console_server):
    def sdk(raw: str, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{console_server.url}/v1", api_key=raw, max_retries=0, timeout=20, **kwargs
        )

    return sdk


def usage_rows(count: int, timeout: float = 5.0, **only) -> list[UsageRecord]:
    """Rows are written after the response has gone: wait for them (`only`: filters)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(UsageRecord.objects.filter(**only).order_by("created_at"))
        if len(rows) >= count:
            return rows
        time.sleep(0.05)
    return list(UsageRecord.objects.filter(**only).order_by("created_at"))


def test_a_non_streamed_call_answers_in_openais_shape(gateway, make_integration, bob, upstream):
    model = make_integration(price_input_per_mtok="1", price_output_per_mtok="2")
    _, raw = keys.create(bob, "app")
    answer = gateway(raw).chat.completions.create(
        model="Model A",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Again"},
        ],
        temperature=0.2,
        max_tokens=30,
        stop=["END"],
        seed=7,
    )
    assert answer.choices[0].message.content == "pong"
    assert answer.choices[0].finish_reason == "stop"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (12, 3)
    sent = upstream.requests[-1].json()
    assert sent["messages"][1:] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Again"},
    ]
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 30 and sent["seed"] == 7
    assert sent["stop"] == ["END"]
    row = usage_rows(1)[0]
    assert row.source == "gateway" and row.model == model and row.ok and not row.estimated
    assert row.cost == Decimal("0.000018") and row.prompt is None  # prompts are off by default


def test_a_streamed_call_sends_chunks_a_usage_chunk_and_done(
    gateway, make_integration, bob, upstream, console_server
):
    make_integration()
    usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    upstream.handler = reply_sse(["one ", "two ", "three"], usage=usage)
    _, raw = keys.create(bob, "app")
    stream = gateway(raw).chat.completions.create(
        model="Model A",
        messages=[{"role": "user", "content": "Count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.total_tokens == 8 and chunks[-1].choices == []
    # The raw wire ends with [DONE].
    with httpx.stream(
        "POST",
        f"{console_server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {raw}"},
        json={"model": "Model A", "messages": [{"role": "user", "content": "x"}], "stream": True},
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    row = usage_rows(2)[0]
    assert row.streamed and row.ttft_ms is not None and row.completion_tokens == 3


def test_models_lists_only_what_the_key_may_use(gateway, make_integration, bob):
    a = make_integration(name="One")
    b = make_integration(name="Two", name_suffix="B")
    make_integration(name="Off", name_suffix="Off", enabled=False)
    CustomModel.objects.filter(pk=b.pk).update(gateway_alias="fast")
    _, everything = keys.create(bob, "all")
    _, only_a = keys.create(bob, "a", allowed=[a])
    assert sorted(m.id for m in gateway(everything).models.list()) == ["Model A", "Model B", "fast"]
    assert [m.id for m in gateway(only_a).models.list()] == ["Model A"]


def test_a_key_limited_to_one_model_cannot_call_another(gateway, make_integration, bob, upstream):
    a = make_integration(name="One")
    make_integration(name="Two", name_suffix="B")
    _, raw = keys.create(bob, "a", allowed=[a])
    sdk = gateway(raw)
    sdk.chat.completions.create(model="Model A", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError) as refused:
        sdk.chat.completions.create(model="Model B", messages=[{"role": "user", "content": "x"}])
    assert refused.value.code == "model_not_found" and refused.value.body["param"] == "model"
    assert len(upstream.requests) == 1


def test_revoked_expired_and_unknown_keys_are_refused(gateway, make_integration, bob, upstream):
    make_integration()
    key, raw = keys.create(bob, "app")
    expired, old = keys.create(bob, "old", expires_at=timezone.now() - timedelta(minutes=1))
    message = [{"role": "user", "content": "x"}]
    gateway(raw).chat.completions.create(model="Model A", messages=message)
    keys.revoke(key)
    for secret in (raw, old, "sk-byo-not-a-key", CANARY):
        with pytest.raises(openai.AuthenticationError) as refused:
            gateway(secret).chat.completions.create(model="Model A", messages=message)
        assert refused.value.code == "invalid_api_key"
    assert len(upstream.requests) == 1


def test_a_disabled_or_deleted_model_is_not_found(gateway, make_integration, bob):
    model = make_integration()
    _, raw = keys.create(bob, "app")
    CustomModel.objects.filter(pk=model.pk).update(enabled=False)
    with pytest.raises(openai.NotFoundError):
        gateway(raw).chat.completions.create(
            model="Model A", messages=[{"role": "user", "content": "x"}]
        )


def test_bad_requests_answer_400_naming_the_parameter(gateway, make_integration, bob, upstream):
    make_integration(name="Claude", protocol="anthropic-messages")
    _, raw = keys.create(bob, "app")
    sdk = gateway(raw)
    cases = [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 9}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        (
            {"messages": [{"role": "user", "content": "x"}], "presence_penalty": 0.5},
            "presence_penalty",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "logprobs": True}, "logprobs"),
    ]
    for body, param in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.chat.completions.create(model="Model A", **body)
        assert refused.value.body["param"] == param, body
    assert upstream.requests == []


def test_tools_pass_through_to_an_openai_shaped_upstream(gateway, make_integration, bob, upstream):
    make_integration()
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    reply = openai_reply("")
    reply["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
    reply["choices"][0]["finish_reason"] = "tool_calls"
    upstream.handler = reply_json(reply)
    _, raw = keys.create(bob, "app")
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    answer = gateway(raw).chat.completions.create(
        model="Model A", messages=[{"role": "user", "content": "x"}], tools=tools
    )
    assert upstream.requests[-1].json()["tools"] == tools
    assert answer.choices[0].message.tool_calls[0].function.name == "f"
    assert answer.choices[0].finish_reason == "tool_calls"


def test_an_anthropic_model_is_translated_both_ways(gateway, make_integration, bob, upstream):
    from tests.upstream import reply_anthropic_sse

    make_integration(name="Claude", protocol="anthropic-messages")
    upstream.handler = reply_json(
        {
            "content": [{"type": "text", "text": "Bonjour"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 19, "output_tokens": 4},
        }
    )
    _, raw = keys.create(bob, "app")
    sdk = gateway(raw)
    messages = [{"role": "system", "content": "French."}, {"role": "user", "content": "Hi"}]
    answer = sdk.chat.completions.create(model="Model A", messages=messages, max_tokens=50)
    sent = upstream.requests[-1]
    assert sent.path == "/v1/messages" and sent.json()["system"] == "French."
    assert sent.json()["messages"] == [{"role": "user", "content": "Hi"}]
    assert answer.choices[0].message.content == "Bonjour"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (19, 4)
    upstream.handler = reply_anthropic_sse(["Bon", "jour"], input_tokens=19, output_tokens=4)
    chunks = list(
        sdk.chat.completions.create(
            model="Model A",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Bonjour"
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (19, 4)


@pytest.fixture(params=["memory", "redis"])
def shared(request):
    """The limits on the development cache and on Redis, as production runs them."""
    if request.param == "redis":
        request.getfixturevalue("redis_cache")
    return request.param


TWELVE_TOKENS = "h" * 48  # estimated at the 12 tokens the upstream reports


def test_requests_per_minute_hold_under_twenty_concurrent_callers(
    shared, gateway, make_integration, bob, upstream
):
    make_integration()
    _, raw = keys.create(bob, "app", rpm=5)
    outcomes = burst(gateway(raw), 20, TWELVE_TOKENS, max_tokens=3)
    assert len(usage_rows(20)) == 20  # the refusals are metered too
    assert outcomes.count("ok") == 5
    refused = [o for o in outcomes if o != "ok"]
    assert len(refused) == 15
    assert all(int(o.response.headers["Retry-After"]) >= 1 for o in refused)
    assert refused[0].code == "rate_limit_exceeded"


def test_the_budget_holds_under_twenty_concurrent_callers(
    shared, gateway, make_integration, bob, upstream
):
    # Each call: 12 prompt + 3 completion tokens at $100,000/M each = $1.50; budget $5.
    make_integration(price_input_per_mtok="100000", price_output_per_mtok="100000")
    key, raw = keys.create(bob, "app", monthly_budget=Decimal("5"))
    outcomes = burst(gateway(raw), 20, TWELVE_TOKENS, max_tokens=3)
    assert len(usage_rows(20)) == 20
    spent = sum(r.cost for r in UsageRecord.objects.filter(key=key, refused=False))
    assert 1 <= outcomes.count("ok") <= 4
    assert spent <= Decimal("5") + Decimal("1.5")  # at most one call's cost over
    assert all(o.code == "budget_exceeded" for o in outcomes if o != "ok")


def test_a_stream_broken_midway_records_its_partial_usage(gateway, make_integration, bob, upstream):
    make_integration()
    upstream.handler = reply_sse([f"w{i} " for i in range(10)], break_after=4)
    _, raw = keys.create(bob, "app")
    stream = gateway(raw).chat.completions.create(
        model="Model A", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError):
        list(stream)
    row = usage_rows(1)[0]
    assert not row.ok and row.error_kind == "connection" and row.estimated
    assert row.completion_tokens >= 1 and row.streamed


def test_a_client_disconnect_closes_the_upstream_call(
    console_server, make_integration, bob, upstream
):
    make_integration()
    upstream.handler = reply_sse([f"w{i} " for i in range(200)], delay=0.05)
    _, raw = keys.create(bob, "app")
    with httpx.stream(
        "POST",
        f"{console_server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {raw}"},
        json={"model": "Model A", "messages": [{"role": "user", "content": "x"}], "stream": True},
        timeout=10,
    ) as response:
        for i, _ in enumerate(response.iter_lines()):
            if i > 6:
                break
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not upstream.requests[0].finished:
        time.sleep(0.05)
    assert upstream.requests[0].finished  # the upstream saw its connection close
    assert time.monotonic() - upstream.requests[0].started < 8  # long before its 10 s
    row = usage_rows(1)[0]
    assert not row.ok and row.completion_tokens >= 1


def test_the_canary_never_appears_in_answers_or_usage(gateway, make_integration, bob, upstream):
    from tests.integrations.test_echo_canary import ECHO, echo_handler

    make_integration()
    _, raw = keys.create(bob, "app", store_prompts=True)
    sdk = gateway(raw)
    seen = []
    for mode in ("ok", "error"):
        upstream.handler = echo_handler(mode)
        try:
            answer = sdk.chat.completions.create(
                model="Model A", messages=[{"role": "user", "content": "x"}]
            )
            seen.append(answer.model_dump_json())
        except openai.APIError as exc:
            seen.append(json.dumps(exc.body))
        try:
            stream = sdk.chat.completions.create(
                model="Model A", messages=[{"role": "user", "content": "x"}], stream=True
            )
            seen += [c.model_dump_json() for c in stream]
        except openai.APIError as exc:
            seen.append(json.dumps(exc.body))
    seen.append(json.dumps([m.id for m in sdk.models.list()]))
    usage_rows(4)
    seen += [json.dumps(list(UsageRecord.objects.values()), default=str)]
    text = "\n".join(seen)
    assert ECHO  # the upstream did echo the secrets
    for secret in (CANARY, CANARY_HEADER):
        assert secret not in text and secret[8:24] not in text


def test_a_sandbox_run_is_metered_too(client, charlie, make_integration, upstream):
    model = make_integration()
    client.force_login(charlie)
    client.post("/sandbox/run", {"model": str(model.pk), "user_prompt": "hi"})
    row = UsageRecord.objects.get()
    assert row.source == "sandbox" and row.user == charlie and row.key is None
    assert row.prompt_tokens == 12 and row.ok


def test_with_the_shared_cache_revoking_or_deactivating_stops_the_next_call(
    redis_cache, gateway, make_integration, bob, alice, client, upstream
):
    make_integration()
    key, raw = keys.create(bob, "app")
    message = [{"role": "user", "content": "x"}]
    sdk = gateway(raw)
    for _ in range(2):  # the second call is served from the worker's cached key and model
        sdk.chat.completions.create(model="Model A", messages=message)
    keys.revoke(key)
    with pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="Model A", messages=message)
    _, fresh = keys.create(bob, "again")
    gateway(fresh).chat.completions.create(model="Model A", messages=message)
    client.force_login(alice)
    client.post(f"/team/users/{bob.username}/active")  # deactivate the owner
    with pytest.raises(openai.AuthenticationError):
        gateway(fresh).chat.completions.create(model="Model A", messages=message)


def test_the_background_writer_batches_rows_and_totals(
    gateway, make_integration, bob, upstream, settings
):
    from integrations.models import UsageDaily

    settings.USAGE_WRITE = "background"  # as in production
    make_integration()
    _, raw = keys.create(bob, "app")
    sdk = gateway(raw)
    for _ in range(5):
        sdk.chat.completions.create(model="Model A", messages=[{"role": "user", "content": "x"}])
    rows = usage_rows(5)
    assert len(rows) == 5
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        daily = UsageDaily.objects.filter(source="gateway").first()
        if daily is not None and daily.requests == 5:
            break
        time.sleep(0.05)
    assert daily.requests == 5 and daily.prompt_tokens == 60


def test_unknown_gateway_paths_answer_in_openais_shape(client):
    response = client.get("/v1/no-such-door")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"
    wrong = client.get("/v1/chat/completions")
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "invalid_request_error"
