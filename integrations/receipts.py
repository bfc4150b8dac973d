"""Signed test receipts: Save accepts only the configuration that just passed a test.

A receipt binds a fingerprint of the normalized configuration (secrets by HMAC
only) to the user who ran the test, and expires.
"""

from __future__ import annotations

from django.core import signing

SALT = "integrations.test-receipt"
MAX_AGE_SECONDS = 15 * 60


def issue(fingerprint: str, user) -> str:
    return signing.dumps({"h": fingerprint, "u": str(user.pk)}, salt=SALT)


def problem(receipt: str, fingerprint: str, user, max_age: int | None = None) -> str | None:
    """Return why the receipt does not allow saving, or None when it does."""
    max_age = max_age or MAX_AGE_SECONDS
    if not receipt:
        return "Run a passing test of this configuration before saving, or Save as draft."
    try:
        data = signing.loads(receipt, salt=SALT, max_age=max_age)
    except signing.SignatureExpired:
        return f"The test is older than {max_age // 60} minutes. Test again, then save."
    except signing.BadSignature:
        return "The test receipt is not valid. Test again, then save."
    if data.get("u") != str(user.pk):
        return "That test was run by another user. Test again, then save."
    if data.get("h") != fingerprint:
        return "The configuration changed after it was tested. Test again, then save."
    return None
