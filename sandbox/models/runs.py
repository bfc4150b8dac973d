"""Every Sandbox run, stored in full; lists show it truncated."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    OK = "ok", "OK"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


class SandboxRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="sandbox_runs"
    )
    # The model may be deleted later; its names stay on the run.
    model = models.ForeignKey(
        "integrations.CustomModel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
    )
    model_name = models.CharField(max_length=100)
    integration_name = models.CharField(max_length=100)
    # A run of a route: the route picked (its name kept), the model above is the target
    # that answered, and each attempt is listed as the gateway's usage rows list them.
    route = models.ForeignKey(
        "integrations.Route", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    route_name = models.CharField(max_length=100, blank=True)
    attempts = models.JSONField(default=list, blank=True)
    compare_group = models.UUIDField(null=True, blank=True, db_index=True)
    column = models.PositiveSmallIntegerField(default=0)  # its place in a compare
    system_prompt = models.TextField(blank=True)
    # The last user turn (what lists show) and, for a conversation, every turn sent.
    user_prompt = models.TextField()
    turns = models.JSONField(default=list, blank=True)
    # The prompts as typed, when they used {{variables}}: {"system", "turns" (the last is
    # the message sent), "variables"}, so that a run reopens with its variables to edit.
    template = models.JSONField(default=dict, blank=True)
    parameters = models.JSONField(default=dict)
    # Tools offered, tool choice and response format ({"tools", "tool_choice", "response_format"}).
    options = models.JSONField(default=dict, blank=True)
    streamed = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    reply = models.TextField(blank=True)
    tool_calls = models.JSONField(default=list, blank=True)  # [{"id", "name", "arguments"}]
    finish_reason = models.CharField(max_length=50, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    # The endpoint reported no usage (or the run was stopped first): the counts and the
    # cost are estimates, and every screen says so.
    usage_estimated = models.BooleanField(default=False)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=20, decimal_places=8, null=True, blank=True)
    error_kind = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    request = models.JSONField(default=dict)  # redacted
    raw_excerpt = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["-created_at"]),
            models.Index(fields=["user", "-created_at"]),
            models.Index(fields=["model", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.model_name} run {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def routed_by(self) -> str:
        """ "via route support-bot, 1 failed attempt": how a routed run was answered."""
        if not self.route_name:
            return ""
        failed = sum(1 for a in self.attempts or () if not a.get("ok"))
        tail = f", {failed} failed attempt{'s' if failed != 1 else ''}" if failed else ""
        return f"via route {self.route_name}{tail}"

    @property
    def classified_error(self):
        """The failure as the error panel shows it: the live one just after the run (with
        the upstream's own words), else rebuilt from what is stored."""
        from integrations.llm.errors import LLMError

        live = getattr(self, "error", None)
        if isinstance(live, LLMError):
            return live
        if not self.error_kind:
            return None
        try:
            return LLMError(self.error_kind, self.error_message)
        except ValueError:  # a kind this version no longer has
            return LLMError("http_error", self.error_message)

    @property
    def tool_calls_json(self) -> str:
        """The reply's tool calls, for the page's script to carry into the conversation."""
        import json

        return json.dumps(self.tool_calls or [])

    @property
    def conversation(self) -> list[dict]:
        return self.turns or [{"role": "user", "content": self.user_prompt}]

    @property
    def siblings(self):
        """The other columns of the compare this run belongs to, in column order."""
        if self.compare_group is None:
            return SandboxRun.objects.none()
        return SandboxRun.objects.filter(compare_group=self.compare_group).order_by("column")


class SavedPrompt(models.Model):
    """A prompt kept with its parameters: the person's own, or shared with the team."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_prompts"
    )
    shared = models.BooleanField("Share with the team", default=False)
    system_prompt = models.TextField(blank=True)
    turns = models.JSONField(default=list, blank=True)  # the conversation so far
    user_prompt = models.TextField(blank=True)  # the message being written
    variables = models.JSONField(default=dict, blank=True)
    # One entry per column: {"model": id or "", "params": {...}}.
    columns = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="saved_prompt_name_unique")
        ]

    def __str__(self) -> str:
        return self.name
