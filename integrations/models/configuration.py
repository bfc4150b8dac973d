"""Configurations: auth profiles, integrations, their headers and models, tests, secrets."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from integrations.llm.auth import AUTH_KINDS
from integrations.llm.protocols import ADAPTERS
from integrations.secrets import SecretField, mask


class Timestamped(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


# Derived from the auth-kind registry: AuthKind.BEARER == "bearer", labels from the registry.
AuthKind = models.TextChoices(
    "AuthKind", [(key.upper(), (key, spec.label)) for key, spec in AUTH_KINDS.items()]
)


class AuthProfile(Timestamped):
    """A reusable, named way to authenticate to an endpoint."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=AuthKind.choices, default=AuthKind.BEARER)
    # The one secret for bearer, header, query and body kinds.
    token = SecretField(blank=True, default="")
    header_name = models.CharField(max_length=100, blank=True, help_text="e.g. x-api-key, api-key")
    query_param = models.CharField(max_length=100, blank=True, help_text="e.g. key")
    body_path = models.CharField(
        max_length=200, blank=True, help_text="Dotted path in the JSON body, e.g. auth.token"
    )
    username = models.CharField(max_length=200, blank=True)
    password = SecretField(blank=True, default="")
    token_url = models.URLField(max_length=2000, blank=True)
    client_id = models.CharField(max_length=300, blank=True)
    client_secret = SecretField(blank=True, default="")
    scope = models.CharField(max_length=500, blank=True)
    # Where the secrets were entered for ("https://host:443", "… via http://proxy:3128").
    # The client refuses any other route; only typing the secret again adds one.
    bound_origins = models.JSONField(default=list, blank=True, editable=False)
    # A live reference to a stored secret (the API's secret_id): its value, read on every
    # call, stands for this kind's secret, and its binding for this profile's.
    stored_secret = models.ForeignKey(
        "StoredSecret", null=True, blank=True, on_delete=models.PROTECT, related_name="profiles"
    )

    SECRET_FIELDS = ("token", "password", "client_secret")
    # Which of the secret fields a stored secret stands for, by kind.
    STORED_SECRET_FIELD = {key: spec.secret for key, spec in AUTH_KINDS.items() if spec.secret}

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def masked_secret(self) -> str:
        """The profile's secret as it may be shown: at most its last 4 characters."""
        if self.stored_secret_id:
            return f"stored secret {self.stored_secret.name}: {mask(self.stored_secret.value)}"
        return mask(self.token or self.password or self.client_secret)


# Derived from the protocol adapters: Protocol.OPENAI_CHAT == "openai-chat".
Protocol = models.TextChoices(
    "Protocol",
    [(key.upper().replace("-", "_"), (key, adapter.label)) for key, adapter in ADAPTERS.items()],
)


class Integration(Timestamped):
    """An endpoint, the wire format it speaks and how to authenticate to it."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    # Stored normalized: the base URL without the protocol's path suffix.
    endpoint = models.URLField(max_length=2000)
    protocol = models.CharField(
        max_length=20, choices=Protocol.choices, default=Protocol.OPENAI_CHAT
    )
    api_version = models.CharField(max_length=40, blank=True, help_text="Azure OpenAI api-version")
    deployment = models.CharField(max_length=200, blank=True, help_text="Azure OpenAI deployment")
    auth_profile = models.ForeignKey(
        AuthProfile, null=True, blank=True, on_delete=models.PROTECT, related_name="integrations"
    )
    # Custom protocol: where to find the answer and usage in the reply.
    request_template = models.JSONField(null=True, blank=True)
    content_path = models.CharField(max_length=200, blank=True)
    finish_reason_path = models.CharField(max_length=200, blank=True)
    prompt_tokens_path = models.CharField(max_length=200, blank=True)
    completion_tokens_path = models.CharField(max_length=200, blank=True)
    total_tokens_path = models.CharField(max_length=200, blank=True)
    tool_calls_path = models.CharField(
        max_length=200, blank=True, help_text="An OpenAI-shaped list of tool calls"
    )
    timeout_seconds = models.FloatField(
        default=60, validators=[MinValueValidator(1), MaxValueValidator(600)]
    )
    verify_tls = models.BooleanField(default=True)
    ca_bundle = models.TextField(blank=True, help_text="PEM certificates for self-signed hosts")
    # Encrypted: a proxy URL often carries the proxy's own credentials.
    proxy_url = SecretField(blank=True, default="")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(timeout_seconds__gte=1) & Q(timeout_seconds__lte=600),
                name="integration_timeout_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class IntegrationHeader(models.Model):
    """An extra header sent with every request; every value is stored encrypted."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="headers")
    name = models.CharField(max_length=200)
    value = SecretField(blank=True, default="")
    secret = models.BooleanField(default=False)
    bound_origins = models.JSONField(default=list, blank=True, editable=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "name"], name="header_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class TestStatus(models.TextChoices):
    NEVER = "never", "Never tested"
    PASSING = "passing", "Passing"
    FAILING = "failing", "Failing"


class ModelKind(models.TextChoices):
    CHAT = "chat", "Chat"
    EMBEDDINGS = "embeddings", "Embeddings"


class CustomModel(Timestamped):
    """A model served behind an integration; `model_id` is what is sent upstream."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="models")
    name = models.CharField("Model name", max_length=100)
    model_id = models.CharField("Model ID", max_length=200)
    # What it answers: a conversation (chat) or vectors (embeddings). It sets the URL and
    # body its calls use, the gateway door that serves it and the Sandbox tab it is in.
    kind = models.CharField(max_length=12, choices=ModelKind.choices, default=ModelKind.CHAT)
    # What apps pass as `model` to the gateway instead of the catalog name, if set.
    gateway_alias = models.CharField("Gateway alias", max_length=100, blank=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    # How many tokens the model takes in all (prompt and answer): what a budget reserves
    # for a call that names no max_tokens. Information only: never sent upstream.
    context_window = models.PositiveIntegerField(null=True, blank=True)
    temperature = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(2)]
    )
    test_model_parameters = models.JSONField(default=dict, blank=True)
    request_template = models.JSONField(null=True, blank=True)
    price_input_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True
    )
    price_output_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True
    )
    last_test_status = models.CharField(
        max_length=10, choices=TestStatus.choices, default=TestStatus.NEVER
    )
    last_test_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    # Why the last test failed, kept on the row so the catalog says it without a query.
    last_test_error_kind = models.CharField(max_length=40, blank=True)
    last_test_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["integration__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "name"], name="model_name_unique"),
            models.CheckConstraint(
                condition=Q(temperature__isnull=True) | Q(temperature__gte=0, temperature__lte=2),
                name="model_temperature_range",
            ),
            models.UniqueConstraint(
                fields=["gateway_alias"],
                condition=~Q(gateway_alias=""),
                name="model_gateway_alias_unique",
            ),
        ]
        indexes = [models.Index(fields=["name"]), models.Index(fields=["last_test_status"])]

    def __str__(self) -> str:
        return f"{self.integration.name} / {self.name}"

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None):
        """What a call cost at this model's prices per million tokens, or None."""
        from decimal import Decimal

        if self.price_input_per_mtok is None or self.price_output_per_mtok is None:
            return None
        if prompt_tokens is None or completion_tokens is None:
            return None
        return (
            Decimal(prompt_tokens) * self.price_input_per_mtok
            + Decimal(completion_tokens) * self.price_output_per_mtok
        ) / Decimal(1_000_000)

    @property
    def last_failure(self):
        """The last test's failure as the error panel shows it, or None."""
        from integrations.llm.errors import LLMError

        if self.last_test_status != TestStatus.FAILING or not self.last_test_error_kind:
            return None
        try:
            return LLMError(self.last_test_error_kind, self.last_test_error)
        except ValueError:  # a kind this version no longer has
            return LLMError("http_error", self.last_test_error)


class ConnectionTest(models.Model):
    """One run of the Test button (or the admin action, API, health check)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Empty while a new configuration is tested before its first Save; linked on Save.
    integration = models.ForeignKey(
        Integration, null=True, blank=True, on_delete=models.CASCADE, related_name="tests"
    )
    subject = models.CharField(max_length=210, blank=True, help_text="Integration / model names")
    model = models.ForeignKey(
        CustomModel, null=True, blank=True, on_delete=models.CASCADE, related_name="tests"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    config_hash = models.CharField(max_length=64)
    ok = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error_kind = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    request = models.JSONField(default=dict)  # redacted: method, url, headers, body
    response_excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["integration", "-created_at"]),
            models.Index(fields=["model", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'failed'} {self.created_at:%Y-%m-%d %H:%M}"


class StoredSecret(Timestamped):
    """A secret stored once and referenced by id (the LiveAvatar pattern); never read back."""

    name = models.CharField(max_length=100, unique=True)
    secret_type = models.CharField(max_length=40, default="LLM_API_KEY")
    value = SecretField()
    # Empty until first used by the person who stored it, or given when it is stored.
    bound_origins = models.JSONField(default=list, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
