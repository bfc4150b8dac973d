"""Routes: one name that apps call, served by an ordered list of saved models (targets)
with a strategy, a retry policy and fallbacks. The rules live in
integrations/gateway/routing.py; the one write path in integrations/routes.py."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from integrations.models.configuration import CustomModel, Timestamped

# The error kinds a route may retry or move on for: the upstream's trouble, never the
# caller's request. 408 is read as a timeout, 529 (Anthropic's overloaded) as a server error.
ROUTABLE_KINDS = (
    "refused", "dns", "tls", "timeout", "connection", "rate_limited", "server_error",
    "auth", "forbidden", "not_found_path", "unknown_model", "non_json", "bad_response",
    "oversized", "credential", "secret_origin",
)  # fmt: skip
DEFAULT_RETRY_SAME = ["connection", "timeout"]
DEFAULT_MOVE_ON = list(ROUTABLE_KINDS)


class RouteStrategy(models.TextChoices):
    PRIORITY = "priority", "Priority order, falling back in turn"
    WEIGHTED = "weighted", "Weighted random"
    LEAST_BUSY = "least_busy", "Least busy (fewest calls in flight)"
    LATENCY = "latency", "Lowest recent latency"


class TargetRole(models.TextChoices):
    MAIN = "main", "Target"
    CONTEXT = "context", "Context-window fallback"
    CONTENT = "content", "Content-policy fallback"


class Route(Timestamped):
    """A callable name over targets. Saved only after at least one target passed a test
    with the route's settings (Test then Save)."""

    name = models.CharField(
        max_length=100, unique=True, help_text="What apps pass as `model`, like a model name."
    )
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=12, default="chat")  # the kind of its targets
    strategy = models.CharField(
        max_length=12, choices=RouteStrategy.choices, default=RouteStrategy.PRIORITY
    )
    retry_same = models.JSONField(default=list, blank=True)  # kinds that retry a target
    move_on = models.JSONField(default=list, blank=True)  # kinds that go to the next one
    attempts_per_target = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    deadline_seconds = models.PositiveIntegerField(
        "Overall deadline (s)", default=120, validators=[MinValueValidator(1)]
    )
    first_token_seconds = models.FloatField(
        "First-token timeout (s)",
        null=True,
        blank=True,
        validators=[MinValueValidator(0.05), MaxValueValidator(600)],
    )
    failures_to_cool = models.PositiveSmallIntegerField(
        "Failures before a cooldown", default=3, validators=[MinValueValidator(1)]
    )
    failure_window_seconds = models.PositiveIntegerField(default=60)
    cooldown_seconds = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1)])
    resume_streams = models.BooleanField("Resume broken streams", default=False)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RouteTarget(models.Model):
    """One saved model in a route, in its place, with its weight and its role, and how
    its last test with the route's settings went."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="targets")
    model = models.ForeignKey(CustomModel, on_delete=models.CASCADE, related_name="route_targets")
    position = models.PositiveSmallIntegerField(default=0)
    weight = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    role = models.CharField(max_length=8, choices=TargetRole.choices, default=TargetRole.MAIN)
    last_test_ok = models.BooleanField(null=True)
    last_test_error = models.CharField(max_length=300, blank=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["route", "position"]
        constraints = [
            models.UniqueConstraint(fields=["route", "model", "role"], name="route_target_once"),
        ]

    def __str__(self) -> str:
        return f"{self.route.name} → {self.model}"
