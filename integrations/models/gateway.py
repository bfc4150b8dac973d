"""The gateway's rows: keys that apps call /v1 with, and the usage every call records."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class GatewayKey(models.Model):
    """A key for the OpenAI-compatible gateway: shown once, stored as a SHA-256 hash.

    It may use all enabled models or a list, within requests and tokens per minute and
    a monthly budget in USD (priced from the models' prices), until it expires or is
    revoked. Revoking takes effect on the next call.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gateway_keys"
    )
    prefix = models.CharField(max_length=16)  # shown in lists to tell keys apart
    digest = models.CharField(max_length=64, unique=True)
    all_models = models.BooleanField("All enabled models", default=True)
    allowed = models.ManyToManyField(
        "integrations.CustomModel", blank=True, related_name="+", verbose_name="Models"
    )
    routes = models.ManyToManyField("integrations.Route", blank=True, related_name="keys")
    rpm = models.PositiveIntegerField("Requests per minute", null=True, blank=True)
    tpm = models.PositiveIntegerField("Tokens per minute", null=True, blank=True)
    monthly_budget = models.DecimalField(
        "Monthly budget (USD)", max_digits=12, decimal_places=4, null=True, blank=True
    )
    store_prompts = models.BooleanField("Store prompts with usage", default=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class UsageSource(models.TextChoices):
    GATEWAY = "gateway", "Gateway"
    SANDBOX = "sandbox", "Sandbox"
    EVALUATION = "eval", "Evaluation"


class UsageRecord(models.Model):
    """One metered call: a gateway request or a Sandbox run. Written after the response."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(db_index=True)
    source = models.CharField(max_length=10, choices=UsageSource.choices)
    key = models.ForeignKey(
        GatewayKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model = models.ForeignKey(
        "integrations.CustomModel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    model_name = models.CharField(max_length=100)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    estimated = models.BooleanField(default=False)  # the upstream reported no usage
    # Wide enough for the largest price (999,999.999999 per Mtok) times the largest counts.
    cost = models.DecimalField(max_digits=20, decimal_places=8, null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    ok = models.BooleanField()
    # Refused by the gateway before any upstream call (a bad key, a model the key may not
    # use, a limit, a parameter it cannot carry); the reason is in error_kind.
    refused = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error_kind = models.CharField(max_length=40, blank=True)  # "stopped": a person stopped it
    streamed = models.BooleanField(default=False)
    # The gateway door it came in by (openai-chat, anthropic-messages, responses,
    # embeddings); blank for a Sandbox run.
    door = models.CharField(max_length=24, blank=True)
    # A call by a route: its name, each attempt ({model, error_kind, status}) and how
    # many times it moved to another target. `model` is the target that answered.
    route = models.CharField(max_length=100, blank=True)
    attempts = models.JSONField(null=True, blank=True)
    fallbacks = models.PositiveSmallIntegerField(default=0)
    prompt = models.JSONField(null=True, blank=True)  # only when the key asks for it
    # The row's id in its worker's spool (integrations.gateway.spool): a row a dead worker
    # left on disk is written once, whoever replays it.
    spool_id = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["key", "created_at"]),
            models.Index(fields=["model", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.model_name} at {self.created_at:%Y-%m-%d %H:%M}"


# Latency buckets of the daily table, in ms (upper bounds; the last is open-ended).
LATENCY_BOUNDS = (50, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200)


class UsageDaily(models.Model):
    """Usage summed per day, source, key, user and model: what the usage page reads, so
    it answers as fast with a million calls as with ten. Latencies are kept as counts
    per bucket (h0 < 50 ms, h1 < 100 ms, ..., h11 >= 51.2 s) for p50 and p95."""

    slot = models.CharField(max_length=200, unique=True)  # day|source|key|user|model
    day = models.DateField()
    source = models.CharField(max_length=10, choices=UsageSource.choices)
    key = models.ForeignKey(
        GatewayKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_name = models.CharField(max_length=100)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)  # upstream failures: not refusals or stops
    refused = models.PositiveIntegerField(default=0)
    stopped = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    estimated = models.PositiveIntegerField(default=0)  # calls whose tokens are estimates
    cost = models.DecimalField(max_digits=28, decimal_places=8, default=0)
    h0 = models.PositiveIntegerField(default=0)
    h1 = models.PositiveIntegerField(default=0)
    h2 = models.PositiveIntegerField(default=0)
    h3 = models.PositiveIntegerField(default=0)
    h4 = models.PositiveIntegerField(default=0)
    h5 = models.PositiveIntegerField(default=0)
    h6 = models.PositiveIntegerField(default=0)
    h7 = models.PositiveIntegerField(default=0)
    h8 = models.PositiveIntegerField(default=0)
    h9 = models.PositiveIntegerField(default=0)
    h10 = models.PositiveIntegerField(default=0)
    h11 = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["day"]), models.Index(fields=["key", "day"])]

    def __str__(self) -> str:
        return self.slot


class StoredResponse(models.Model):
    """A /v1/responses answer kept for its key (`store`, the default): fetched or deleted
    by id, and continued from with `previous_response_id`, until it expires
    (RESPONSES_RETENTION_DAYS). What it holds was scrubbed like any reply."""

    id = models.CharField(primary_key=True, max_length=64)
    key = models.ForeignKey(GatewayKey, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    # The conversation up to and including this answer, as Responses input items.
    history = models.JSONField(default=list)
    response = models.JSONField()  # as its caller received it

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.id
