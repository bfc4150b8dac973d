"""Sending one alert message: by email (Django's mail, SMTP settings) and by webhook (JSON
with a `text` field, which Slack's and Teams' incoming webhooks both accept), each tried
a few times, and each outcome kept as an AlertDelivery for the Alerts page.

A webhook URL carries its secret in its path (Slack's do), so it is stored encrypted,
sent through the same guarded transport as model calls (no private addresses, no
redirects, a deadline), and only its origin is ever shown or kept in the history.
"""

from __future__ import annotations

import json
import logging
import smtplib
import time

from django.conf import settings
from django.core.mail import send_mail

from integrations.llm import transport
from integrations.llm.errors import LLMError
from integrations.llm.redact import scrub
from integrations.models import AlertDelivery
from integrations.telemetry import metrics

logger = logging.getLogger(__name__)
WEBHOOK_TIMEOUT = 10.0


def deliver(incident, event: str) -> list[AlertDelivery]:
    """Send the incident's message (`firing` or `resolved`) on each of its rule's channels."""
    rule = incident.rule
    subject, text = message(incident, event)
    out = []
    if recipients := rule.recipients():
        out.append(_try(incident, event, "email", ", ".join(recipients)[:300],
                        lambda: _email(subject, text, recipients)))  # fmt: skip
    if rule.webhook_url:
        origin = metrics.api_base(rule.webhook_url) or "(webhook)"
        out.append(_try(incident, event, "webhook", origin,
                        lambda: _webhook(rule.webhook_url, text, incident, event),
                        secret=rule.webhook_url))  # fmt: skip
    return out


def message(incident, event: str) -> tuple[str, str]:
    mark = {"resolved": "Resolved", "test": "Test"}.get(event, "Alert")
    subject = f"[{mark}] {incident.title}"[:250]
    lines = [subject]
    if incident.detail:
        lines.append(incident.detail)
    lines.append(f"Rule: {incident.rule.name}")
    if event == "resolved" and incident.resolved_at is not None:
        lasted = incident.resolved_at - incident.opened_at
        lines.append(f"It lasted {_duration(lasted.total_seconds())}.")
    if settings.CONSOLE_URL:
        lines.append(f"{settings.CONSOLE_URL}/alerts/")
    return subject, "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{round(seconds)} s"
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _try(incident, event: str, channel: str, target: str, send, secret: str = "") -> AlertDelivery:
    waits = (0.0, *settings.ALERT_RETRY_SECONDS)
    error = ""
    for attempt, wait in enumerate(waits, start=1):
        time.sleep(wait)
        try:
            send()
        except (OSError, smtplib.SMTPException, LLMError, DeliveryError) as exc:
            error = scrub(str(exc), [secret]) if secret else str(exc)
            error = error[:300] or type(exc).__name__
            continue
        metrics.child(metrics.alerts, channel, event).inc()
        return AlertDelivery.objects.create(
            incident=incident,
            event=event,
            channel=channel,
            target=target,
            ok=True,
            attempts=attempt,
        )
    logger.warning(
        "An alert could not be sent by %s after %d tries: %s", channel, len(waits), error
    )
    metrics.child(metrics.alert_failures, channel).inc()
    return AlertDelivery.objects.create(
        incident=incident, event=event, channel=channel, target=target, ok=False,
        attempts=len(waits), error=error,
    )  # fmt: skip


class DeliveryError(Exception):
    pass


def _email(subject: str, text: str, recipients: list[str]) -> None:
    send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)


def _webhook(url: str, text: str, incident, event: str) -> None:
    body = {
        "text": text,
        "alert": {
            "event": event,
            "rule": incident.rule.name,
            "kind": incident.rule.kind,
            "subject": incident.subject,
            "title": incident.title,
            "opened_at": incident.opened_at.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        },
    }
    answer = transport.send(
        "POST", url, headers={"Content-Type": "application/json"},
        content=json.dumps(body).encode(), timeout=WEBHOOK_TIMEOUT,
    )  # fmt: skip
    if not 200 <= answer.status_code < 300:
        raise DeliveryError(f"The webhook answered {answer.status_code}.")
