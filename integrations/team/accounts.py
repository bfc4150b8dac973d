"""Login: throttled per account and per IP (Django cache, shared by workers), and audited."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.dispatch import receiver

from integrations import audit
from integrations.models import AuditAction


def _keys(username: str, ip: str | None) -> list[tuple[str, int]]:
    account = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [
        (f"login-fail:account:{account}", settings.LOGIN_FAILURES_PER_ACCOUNT),
        (f"login-fail:ip:{ip or 'unknown'}", settings.LOGIN_FAILURES_PER_IP),
    ]


def locked(username: str, ip: str | None) -> bool:
    return any((cache.get(key) or 0) >= limit for key, limit in _keys(username, ip))


def count_failure(username: str, ip: str | None) -> None:
    for key, _ in _keys(username, ip):
        cache.add(key, 0, timeout=settings.LOGIN_LOCKOUT_SECONDS)
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)


class ThrottleMixin:
    """One lockout for every password form: the console's login and the Django admin's."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        ip = audit.client_ip(self.request)
        if locked(username, ip):
            minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
            raise ValidationError(
                f"Too many failed logins. Try again in {minutes} minutes, or ask an Admin to reset "
                "your password.",
                code="throttled",
            )
        try:
            return super().clean()
        except ValidationError:
            count_failure(username, ip)
            raise


class ThrottledAuthenticationForm(ThrottleMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottleMixin, AdminAuthenticationForm):
    pass


@receiver(user_logged_in)
def _audit_login(sender, request, user, **kwargs):
    audit.record(request, AuditAction.LOGIN, user, user=user, object_type="user")


@receiver(user_login_failed)
def _audit_failed_login(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    audit.record(
        request, AuditAction.LOGIN_FAILED, detail=f"username: {username}", object_type="user"
    )
