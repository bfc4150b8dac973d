"""Encrypted secret fields that fail closed.

django-encrypted-model-fields returns the ciphertext when a value does not decrypt,
and a later save encrypts that ciphertext again. Here a value that does not decrypt
becomes an `UnreadableSecret`: it can be shown ("unreadable"), it is written back
unchanged if the row is saved, and anything that needs the plaintext gets
`CredentialUnreadable` instead. The keys are read from settings on use, so key
rotation (and tests) need no restart.
"""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from encrypted_model_fields.fields import EncryptedTextField

MASK = "••••"


class CredentialUnreadable(Exception):
    """A stored secret does not decrypt with any configured key."""

    def __init__(self, what: str = "credential"):
        super().__init__(
            f"{what} unreadable: re-enter it or restore the key it was encrypted with "
            "(FIELD_ENCRYPTION_KEY)."
        )


class UnreadableSecret:
    """A stored value that does not decrypt; holds the ciphertext so it is kept as is."""

    __slots__ = ("ciphertext",)

    def __init__(self, ciphertext: str):
        self.ciphertext = ciphertext

    def __str__(self) -> str:
        return "[unreadable credential]"

    __repr__ = __str__

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnreadableSecret) and other.ciphertext == self.ciphertext

    def __hash__(self) -> int:
        return hash(self.ciphertext)


class Ciphertext(str):
    """A value already encrypted (by key rotation): stored as is, never encrypted again."""


@functools.lru_cache(maxsize=8)
def _crypter(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


def crypter() -> MultiFernet:
    keys = settings.FIELD_ENCRYPTION_KEY
    if isinstance(keys, str):
        keys = [keys]
    return _crypter(tuple(keys))


def encrypt(plaintext: str) -> str:
    return crypter().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str | UnreadableSecret:
    try:
        return crypter().decrypt(ciphertext.encode()).decode()
    except (InvalidToken, ValueError, TypeError):
        return UnreadableSecret(ciphertext)


def reveal(value: str | UnreadableSecret | None, what: str = "credential") -> str:
    """Return the plaintext to send upstream, or raise if it cannot be read."""
    if isinstance(value, UnreadableSecret):
        raise CredentialUnreadable(what)
    return value or ""


def mask(value: str | UnreadableSecret | None) -> str:
    """Return what a secret looks like on screen: at most its last 4 characters."""
    if isinstance(value, UnreadableSecret):
        return "unreadable: re-enter"
    if not value:
        return ""
    # Short secrets show no tail at all: 4 of 8 characters would be half the secret.
    return MASK + value[-4:] if len(value) >= 12 else MASK


class SecretField(EncryptedTextField):
    """An encrypted text field that never returns or re-encrypts ciphertext."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def to_python(self, value):
        # Values from forms are plaintext; only from_db_value decrypts.
        return value

    def get_db_prep_save(self, value, connection):
        if value is None:
            return None
        if isinstance(value, UnreadableSecret):
            return value.ciphertext
        if isinstance(value, Ciphertext):
            return str(value)
        if value == "":
            return ""
        return encrypt(str(value))

    def value_to_string(self, obj) -> str:
        # Serialization (dumpdata) never carries plaintext.
        return ""
