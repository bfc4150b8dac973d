"""Personal API tokens: created once, stored hashed, checked on every API call."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.utils import timezone

from integrations.models import ApiToken

PREFIX = "byo_"
TOUCH_EVERY = timedelta(minutes=1)  # last-used time is written at most this often


def digest(raw: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is enough to store them safely.
    return hashlib.sha256(raw.encode()).hexdigest()


def create(user, name: str, expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """Return the new token row and its plaintext, which is shown once and never again."""
    raw = PREFIX + secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    token = ApiToken.objects.create(
        user=user, name=name, prefix=raw[:10], digest=digest(raw), expires_at=expires_at
    )
    return token, raw


def authenticate(raw: str):
    """Return the token's owner if the token is live and the owner active, else None."""
    if not raw or not raw.startswith(PREFIX):
        return None
    token = ApiToken.objects.select_related("user").filter(digest=digest(raw)).first()
    now = timezone.now()
    if token is None or token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if not token.user.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.user.api_token = token
    return token.user
