"""The audit trail's rows: written once, never changed or deleted."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditAction(models.TextChoices):
    CREATE = "create", "Create"
    UPDATE = "update", "Update"
    DELETE = "delete", "Delete"
    ENABLE = "enable", "Enable"
    DISABLE = "disable", "Disable"
    TEST = "test", "Test"
    SANDBOX_RUN = "sandbox_run", "Sandbox run"
    LOGIN = "login", "Login"
    LOGIN_FAILED = "login_failed", "Failed login"
    ROLE_CHANGE = "role_change", "Role change"
    USER_INVITE = "user_invite", "User invited"
    USER_DEACTIVATE = "user_deactivate", "User deactivated"
    USER_REACTIVATE = "user_reactivate", "User reactivated"
    TOKEN_CREATE = "token_create", "Token created"
    TOKEN_REVOKE = "token_revoke", "Token revoked"
    GATEWAY_KEY_CREATE = "gateway_key_create", "Gateway key created"
    GATEWAY_KEY_REVOKE = "gateway_key_revoke", "Gateway key revoked"
    EXPORT = "export", "Export"
    IMPORT = "import", "Import"
    DATASET = "dataset", "Dataset"
    PROMPT_VERSION = "prompt_version", "Prompt version"
    EXPERIMENT = "experiment", "Experiment"
    REVIEW = "review", "Review"


class AuditEvent(models.Model):
    """Who did what to which object, when, from where. Written once, never changed."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=20, choices=AuditAction.choices)
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=250, blank=True)
    changes = models.JSONField(default=dict, blank=True)  # {field: [old, new]}; secrets: "changed"
    detail = models.CharField(max_length=500, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["action", "-created_at"]),
            models.Index(fields=["object_type", "object_id"]),
            models.Index(fields=["username", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.username or 'system'} {self.action} {self.object_repr}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events cannot be deleted.")
