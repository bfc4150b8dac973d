"""Every call is metered, refusals included: a bad key shaped like ours, a model the key
may not use, a limit, a parameter a door cannot carry each leave a row with its reason,
shown on the Usage page and in its CSV; a stopped Sandbox run is not an error; and the
daily totals say what the rows say."""

from __future__ import annotations

import csv
import io
import re

import openai
import pytest
from django.db.models import Sum
from django.urls import reverse

from integrations.gateway import keys, metering
from integrations.models import UsageDaily, UsageRecord
from tests.gateway.test_gateway import usage_rows

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sdk(console_server):
    def make(raw: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{console_server.url}/v1", api_key=raw, max_retries=0)

    return make


def _ask(client, model="Model A", **extra):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], **extra
    )


def test_each_kind_of_refusal_is_a_row_with_its_reason(sdk, make_integration, bob, upstream):
    model = make_integration()
    key, raw = keys.create(bob, "app", rpm=2, allowed=[model])
    _ask(sdk(raw))
    _ask(sdk(raw))
    with pytest.raises(openai.RateLimitError):
        _ask(sdk(raw))  # the third in a minute
    with pytest.raises(openai.NotFoundError):
        _ask(sdk(raw), model="not-this-one")
    with pytest.raises(openai.AuthenticationError):
        _ask(sdk(raw[:-4] + "zzzz"))  # shaped like ours: a row
    with pytest.raises(openai.AuthenticationError):
        _ask(sdk("sk-somebody-elses"))  # not ours: no row (a scanner's guess)
    rows = usage_rows(5)
    refused = sorted((r.status_code, r.error_kind, r.key_id == key.pk, r.model_name)
                     for r in rows if r.refused)  # fmt: skip
    assert refused == [
        (401, "invalid_api_key", False, ""),
        (404, "model_not_found", True, "not-this-one"),
        (429, "rate_limit_exceeded", True, model.name),
    ]
    assert len([r for r in rows if not r.refused and r.ok]) == 2
    assert UsageRecord.objects.count() == 5


def test_refusals_show_on_the_usage_page_and_in_the_csv_apart_from_errors(
    client, alice, bob, make_integration, upstream, sdk
):
    model = make_integration()
    _, raw = keys.create(bob, "app", rpm=1, allowed=[model])
    _ask(sdk(raw))
    for _ in range(3):
        with pytest.raises(openai.RateLimitError):
            _ask(sdk(raw))
    usage_rows(4)
    client.force_login(alice)
    page = client.get(reverse("usage")).content.decode()
    assert re.search(r"<dt>Refused</dt><dd><a [^>]*show=refused[^>]*>3</a></dd>", page)
    assert "<dt>Errors</dt><dd>0</dd>" in page and "Refused per day" in page
    lines = list(csv.DictReader(io.StringIO(client.get(reverse("usage-csv")).content.decode())))
    assert sum(int(line["refused"]) for line in lines) == 3
    assert sum(int(line["errors"]) for line in lines) == 0
    assert sum(int(line["requests"]) for line in lines) == 4
    # Refused calls only: their count per day, their reasons, and one CSV line each.
    only = client.get(reverse("usage"), {"show": "refused"}).content.decode()
    assert "<dt>Refused</dt><dd>3</dd>" in only and "<dt>Requests</dt>" not in only
    assert "<td>rate_limit_exceeded</td><td>429</td><td>3</td>" in only
    assert "<td>app (" in only
    csv_only = client.get(reverse("usage-csv"), {"show": "refused"}).content.decode()
    refused = list(csv.DictReader(io.StringIO(csv_only)))
    assert [(r["key"], r["reason"], r["status"]) for r in refused] == [
        ("app", "rate_limit_exceeded", "429")
    ] * 3


def test_a_stopped_sandbox_run_is_counted_as_stopped_not_as_an_error(bob, make_integration):
    from sandbox.models import SandboxRun

    model = make_integration()
    run = SandboxRun(user=bob, model=model, model_name=model.name, integration_name="Local",
                     user_prompt="hi", status="stopped", streamed=True)  # fmt: skip
    metering.from_run(None, run)
    (row,) = UsageRecord.objects.all()
    assert row.error_kind == "stopped" and not row.ok
    day = UsageDaily.objects.get()
    assert (day.requests, day.errors, day.stopped) == (1, 0, 1)


def test_the_daily_totals_say_what_the_rows_say(sdk, make_integration, bob, upstream):
    from tests.upstream import reply_json

    model = make_integration()
    _, raw = keys.create(bob, "app", rpm=4, allowed=[model])
    _ask(sdk(raw))
    upstream.handler = reply_json({"error": {"message": "down"}}, status=500)
    with pytest.raises(openai.InternalServerError):
        _ask(sdk(raw))
    for _ in range(3):
        with pytest.raises(openai.APIStatusError):
            _ask(sdk(raw))
    with pytest.raises(openai.NotFoundError):
        _ask(sdk(raw), model="nope")
    rows = usage_rows(6)
    assert len(rows) == 6
    days = UsageDaily.objects.aggregate(requests=Sum("requests"), errors=Sum("errors"),
                                        refused=Sum("refused"), cost=Sum("cost"))  # fmt: skip
    assert days["requests"] == len(rows)
    assert days["refused"] == sum(r.refused for r in rows)
    assert days["errors"] == sum(1 for r in rows if not r.ok and not r.refused)
    assert days["cost"] == sum((r.cost or 0) for r in rows)


def test_a_refusal_at_the_anthropic_door_keeps_its_reason(console_server, make_integration, bob):
    import anthropic

    model = make_integration()
    _, raw = keys.create(bob, "app", allowed=[model])
    client = anthropic.Anthropic(base_url=console_server.url, api_key=raw, max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(
            model="nope", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    (row,) = usage_rows(1)
    assert (row.refused, row.status_code, row.error_kind, row.door) == (
        True, 404, "model_not_found", "anthropic-messages",
    )  # fmt: skip
