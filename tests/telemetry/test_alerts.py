"""Alerts go to a real SMTP server (aiosmtpd) and a webhook listener on 127.0.0.1: one
message per incident and one when it resolves, none doubled under 20 checks at once, a
quiet window for flapping, retries, and the page for Admins only."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from integrations.alerts import checks, tasks
from integrations.gateway import keys
from integrations.models import AlertDelivery, AlertIncident, AlertRule, UsageRecord
from integrations.models import TestStatus as Status
from tests.production import free_port
from tests.upstream import send

pytestmark = pytest.mark.django_db(transaction=True)
HOOK_PATH = "/services/T000/B000/secret-path-7f3e9b1d"


class Inbox:
    def __init__(self):
        self.messages: list = []

    def subjects(self) -> list[str]:
        from email import message_from_string, policy

        return [
            str(message_from_string(m, policy=policy.default)["Subject"]) for _, m in self.messages
        ]

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def inbox(settings):
    found = Inbox()
    controller = Controller(found, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.ALERT_RETRY_SECONDS = (0.05, 0.1)
    yield found
    controller.stop()


@pytest.fixture
def hook(upstream):
    """A webhook listener (Slack's shape: it answers "ok"); `posts` holds what it got."""
    upstream.posts = []

    def handle(rec, h):
        upstream.posts.append(json.loads(rec.body))
        send(h, 200, b"ok", "text/plain")

    upstream.handler = handle
    upstream.hook_url = f"{upstream.url}{HOOK_PATH}"
    return upstream


def rule(**fields) -> AlertRule:
    base = {"name": "Ops", "emails": "ops@example.com\noncall@example.com"}
    return AlertRule.objects.create(**(base | fields))


def together(times: int = 20) -> None:
    """Run the check from many threads at once, as many workers would."""
    start = threading.Barrier(times)

    def one():
        start.wait()
        try:
            checks.check()
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=one) for _ in range(times)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def test_one_incident_sends_one_message_and_one_when_it_resolves_under_twenty_checks(
    inbox, hook, make_integration
):
    model = make_integration()
    rule(kind="check_failed", webhook_url=hook.hook_url)
    type(model).objects.filter(pk=model.pk).update(
        last_test_status=Status.FAILING, last_test_error_kind="auth", last_tested_at=timezone.now()
    )
    together()
    assert AlertIncident.objects.count() == 1
    assert len(inbox.messages) == 1 and len(hook.posts) == 1
    recipients, mail = inbox.messages[0]
    assert sorted(recipients) == ["oncall@example.com", "ops@example.com"]
    assert "[Alert] Local / Model A fails its check (auth)" in mail
    assert hook.posts[0]["text"].startswith("[Alert] Local / Model A fails its check")
    assert hook.posts[0]["alert"]["event"] == "firing"
    type(model).objects.filter(pk=model.pk).update(last_test_status=Status.PASSING)
    together()
    assert len(inbox.messages) == 2 and len(hook.posts) == 2
    assert "[Resolved] Local / Model A fails its check" in inbox.messages[1][1]
    assert hook.posts[1]["alert"]["event"] == "resolved"
    assert AlertIncident.objects.get().resolved_at is not None
    sent = AlertDelivery.objects.order_by("created_at")
    assert [(d.event, d.channel, d.ok) for d in sent] == [
        ("firing", "email", True), ("firing", "webhook", True),
        ("resolved", "email", True), ("resolved", "webhook", True),
    ]  # fmt: skip
    # The history keeps the webhook's origin, never its secret path.
    assert all(HOOK_PATH not in d.target for d in sent)


def test_a_flapping_model_is_one_message_within_the_quiet_window(inbox, make_integration):
    model = make_integration()
    rule(kind="check_failed")
    failing = {"last_test_status": Status.FAILING, "last_tested_at": timezone.now()}
    for _ in range(3):
        type(model).objects.filter(pk=model.pk).update(**failing)
        checks.check()
        type(model).objects.filter(pk=model.pk).update(last_test_status=Status.PASSING)
        checks.check()
    assert len(inbox.messages) == 2  # the first alert and its resolution
    assert AlertIncident.objects.filter(notified=False).count() == 2


def test_a_keys_budget_alerts_at_each_level_it_crosses(inbox, bob, make_integration):
    model = make_integration()
    key, _ = keys.create(bob, "billing-app", monthly_budget=Decimal("1"))
    rule(kind="key_budget")
    from integrations.gateway import metering

    metering.write([UsageRecord(created_at=timezone.now(), source="gateway", key=key, user=bob,
                                model=model, model_name=model.name, cost=Decimal("0.85"), ok=True)])  # fmt: skip
    checks.check()
    assert sorted(inbox.subjects()) == [
        "[Alert] Key 'billing-app' has used 85% of its $1.00 monthly budget (crossed 50%)",
        "[Alert] Key 'billing-app' has used 85% of its $1.00 monthly budget (crossed 80%)",
    ]
    type(key).objects.filter(pk=key.pk).update(monthly_budget=Decimal("10"))
    checks.check()
    assert len(inbox.messages) == 4 and all("[Resolved]" in m[1] for m in inbox.messages[2:])


def test_error_rate_and_p95_latency_over_fifteen_minutes(inbox, make_integration):
    model = make_integration()
    rule(name="Errors", kind="error_rate", threshold=20, min_calls=10)
    rule(name="Slow", kind="latency", threshold=2000, min_calls=10)
    now = timezone.now()
    rows = [UsageRecord(created_at=now, source="gateway", model=model, model_name=model.name,
                        ok=i >= 3, latency_ms=2500 if i == 9 else 300, error_kind="" if i >= 3 else "timeout")
            for i in range(10)]  # fmt: skip
    old = UsageRecord(created_at=now - timedelta(minutes=20), source="gateway", model=model,
                      model_name=model.name, ok=False, error_kind="timeout")  # fmt: skip
    from integrations.gateway import metering

    metering.write([*rows, old])
    checks.check()
    assert inbox.subjects() == ["[Alert] Model A: 30% of calls failed in the last 15 minutes"]
    # Seven answered calls: fewer than the rule's ten for a latency figure. Three more:
    assert len(inbox.messages) == 1
    metering.write([UsageRecord(created_at=now, source="gateway", model=model, model_name=model.name,
                                ok=True, latency_ms=2600) for _ in range(3)])  # fmt: skip
    checks.check()
    assert inbox.subjects()[-1] == "[Alert] Model A: p95 latency 2,600 ms over the last 15 minutes"


def test_a_webhook_that_fails_twice_is_tried_again(inbox, hook, make_integration):
    seen = []

    def flaky(rec, h):
        seen.append(1)
        if len(seen) < 3:
            send(h, 500, b"busy", "text/plain")
        else:
            send(h, 200, b"ok", "text/plain")

    hook.handler = flaky
    model = make_integration()
    rule(kind="check_failed", emails="", webhook_url=hook.hook_url)
    type(model).objects.filter(pk=model.pk).update(last_test_status=Status.FAILING)
    checks.check()
    (delivery,) = AlertDelivery.objects.all()
    assert delivery.ok and delivery.attempts == 3


def test_a_delivery_that_never_works_is_kept_with_its_error(settings, make_integration):
    settings.ALERT_RETRY_SECONDS = (0.01, 0.01)
    model = make_integration()
    url = f"http://127.0.0.1:{free_port()}{HOOK_PATH}"
    rule(kind="check_failed", emails="", webhook_url=url)
    type(model).objects.filter(pk=model.pk).update(last_test_status=Status.FAILING)
    checks.check()
    (delivery,) = AlertDelivery.objects.all()
    assert not delivery.ok and delivery.attempts == 3 and delivery.error
    assert HOOK_PATH not in delivery.error


def test_the_task_queue_keeps_one_chain_of_checks(settings):
    from django_tasks_db.models import DBTaskResult

    assert tasks.schedule() is True
    assert tasks.schedule() is False  # one chain is alive
    (waiting,) = DBTaskResult.objects.all()
    assert waiting.run_after > timezone.now() + timedelta(seconds=settings.ALERT_CHECK_SECONDS - 5)
    token = waiting.args_kwargs["args"][0]
    tasks.check_alerts.call(token)  # the worker runs it: the next one is enqueued
    assert DBTaskResult.objects.count() == 2
    tasks.check_alerts.call("a-stale-chain")  # another chain's check ends its chain
    assert DBTaskResult.objects.count() == 2


def test_the_alerts_page_is_for_admins_and_never_shows_the_webhook(client, alice, bob, hook, inbox):
    client.force_login(bob)
    assert client.get("/alerts/").status_code == 403
    client.force_login(alice)
    answer = client.post("/alerts/", {"name": "Budgets", "kind": "team_budget", "amount": "",
                                      "min_calls": 10, "emails": "", "enabled": "on"})  # fmt: skip
    assert answer.status_code == 200
    page = answer.content.decode()
    assert "Give the team&#x27;s monthly amount" in page and "Give at least one recipient" in page
    answer = client.post("/alerts/", {"name": "Budgets", "kind": "team_budget", "amount": "500",
                                      "min_calls": 10, "emails": "ops@example.com",
                                      "webhook_url": hook.hook_url, "enabled": "on"})  # fmt: skip
    assert answer.status_code == 302
    made = AlertRule.objects.get(name="Budgets")
    assert made.webhook_url == hook.hook_url and made.created_by == alice
    page = client.get("/alerts/").content.decode()
    assert HOOK_PATH not in page and "Budgets" in page
    edit = client.get(f"/alerts/{made.pk}/edit").content.decode()
    assert HOOK_PATH not in edit and "Leave blank to keep it" in edit
    client.post(f"/alerts/{made.pk}/edit", {"name": "Budgets", "kind": "team_budget", "amount": "600",
                                            "min_calls": 10, "emails": "ops@example.com", "enabled": "on"})  # fmt: skip
    made.refresh_from_db()
    assert made.amount == 600 and made.webhook_url == hook.hook_url  # blank kept it
    client.post(f"/alerts/{made.pk}/try")
    assert len(inbox.messages) == 1 and "[Test] Test message for Budgets" in inbox.messages[0][1]
    assert hook.posts[0]["alert"]["event"] == "test"
    from integrations.models import AuditEvent

    assert AuditEvent.objects.filter(object_type="alertrule").count() == 2
    client.post(f"/alerts/{made.pk}/delete")
    assert not AlertRule.objects.exists()
