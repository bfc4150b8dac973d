"""Alerts: rules an Admin sets, the incidents they open and close, and each message sent.

An incident is one (rule, subject) while it lasts: at most one is open at a time, which
the database holds (a partial unique index), so checks that run at once on many workers
open it once and send one message; the one check that closes it sends one more.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from integrations.secrets import SecretField


class AlertKind(models.TextChoices):
    KEY_BUDGET = "key_budget", "A gateway key's budget crosses 50, 80 or 100%"
    TEAM_BUDGET = "team_budget", "The team's spend this month crosses 50, 80 or 100% of an amount"
    CHECK_FAILED = "check_failed", "A model fails its scheduled check"
    COOLDOWN = "cooldown", "A route target cools down"
    ERROR_RATE = "error_rate", "A model's error rate over 15 minutes passes a threshold"
    LATENCY = "latency", "A model's p95 latency over 15 minutes passes a threshold"


class AlertRule(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    key = models.ForeignKey(
        "integrations.GatewayKey", null=True, blank=True, on_delete=models.CASCADE,
        related_name="+", help_text="Blank: every key that has a budget.",
    )  # fmt: skip
    model = models.ForeignKey(
        "integrations.CustomModel", null=True, blank=True, on_delete=models.CASCADE,
        related_name="+", help_text="Blank: every model.",
    )  # fmt: skip
    amount = models.DecimalField(
        "Team budget (USD a month)", max_digits=14, decimal_places=2, null=True, blank=True
    )
    threshold = models.FloatField(
        null=True, blank=True, help_text="Error rate in percent, or p95 latency in milliseconds."
    )
    min_calls = models.PositiveIntegerField(
        "Fewest calls", default=10, help_text="Below this many calls in 15 minutes, no alert."
    )
    emails = models.TextField("Email recipients", blank=True, help_text="One address per line.")
    webhook_url = SecretField(
        "Webhook URL", blank=True,
        help_text="Slack or Teams incoming webhook (JSON with a text field). Stored encrypted.",
    )  # fmt: skip
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def recipients(self) -> list[str]:
        return [
            line.strip() for line in self.emails.replace(",", "\n").splitlines() if line.strip()
        ]


class AlertIncident(models.Model):
    id = models.BigAutoField(primary_key=True)
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="incidents")
    subject = models.CharField(max_length=200)  # what it is about: "key:<id>:80", "model:<id>"
    title = models.CharField(max_length=300)
    detail = models.TextField(blank=True)
    opened_at = models.DateTimeField(auto_now_add=True, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    notified = models.BooleanField(default=True)  # False: inside the dedupe window, kept quiet

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject"],
                condition=models.Q(resolved_at__isnull=True),
                name="one_open_incident",
            )
        ]

    def __str__(self) -> str:
        return self.title


class AlertDelivery(models.Model):
    id = models.BigAutoField(primary_key=True)
    incident = models.ForeignKey(AlertIncident, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=10)  # firing | resolved
    channel = models.CharField(max_length=10)  # email | webhook
    target = models.CharField(max_length=300)  # addresses, or the webhook's origin only
    ok = models.BooleanField()
    attempts = models.PositiveSmallIntegerField(default=1)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event} by {self.channel} to {self.target}"
