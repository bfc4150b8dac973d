"""One check of every enabled rule: open an incident for what fires and was not open,
close the open ones that stopped firing, and send a message for each change.

Checks may run at once on many workers and hosts (cron on two machines, a task queue
with many workers): the database lets only one of them open an incident (its partial
unique index) and only one close it (an UPDATE that finds it still open), and only that
one sends the message. A subject that fires again within ALERT_DEDUPE_SECONDS of its
last incident's end opens a quiet incident: one flapping model is one message.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations.alerts import conditions
from integrations.alerts.delivery import deliver
from integrations.models import AlertIncident, AlertRule

logger = logging.getLogger(__name__)


def check() -> dict:
    """Check every enabled rule; return {"opened": n, "resolved": n, "sent": n}."""
    totals = {"opened": 0, "resolved": 0, "sent": 0}
    for rule in AlertRule.objects.filter(enabled=True):
        try:
            found = conditions.firing(rule)
        except Exception:  # one broken rule must not stop the others
            logger.exception("Alert rule %s could not be checked", rule.pk)
            continue
        for key, value in _apply(rule, found).items():
            totals[key] += value
    return totals


def _apply(rule, found: dict) -> dict:
    counts = {"opened": 0, "resolved": 0, "sent": 0}
    open_now = {i.subject: i for i in rule.incidents.filter(resolved_at__isnull=True)}
    for subject, (title, detail) in found.items():
        if subject in open_now:
            continue
        incident = _open(rule, subject, title, detail)
        if incident is None:
            continue  # another check opened it first
        counts["opened"] += 1
        if incident.notified:
            counts["sent"] += len(deliver(incident, "firing"))
    for subject, incident in open_now.items():
        if subject in found:
            continue
        now = timezone.now()
        closed = AlertIncident.objects.filter(pk=incident.pk, resolved_at__isnull=True).update(
            resolved_at=now
        )
        if not closed:
            continue  # another check closed it first
        counts["resolved"] += 1
        incident.resolved_at = now
        if incident.notified:
            counts["sent"] += len(deliver(incident, "resolved"))
    return counts


def _open(rule, subject: str, title: str, detail: str) -> AlertIncident | None:
    recently = timezone.now() - timedelta(seconds=settings.ALERT_DEDUPE_SECONDS)
    quiet = AlertIncident.objects.filter(
        rule=rule, subject=subject, resolved_at__gte=recently, notified=True
    ).exists()
    try:
        with transaction.atomic():
            return AlertIncident.objects.create(
                rule=rule,
                subject=subject[:200],
                title=title[:300],
                detail=detail,
                notified=not quiet,
            )
    except IntegrityError:
        return None
