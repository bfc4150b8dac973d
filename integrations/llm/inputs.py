"""The edge rules for what a person may configure: URLs, headers, JSON, text.

Forms, the REST API, the Django admin, import and the client all call these, so a
value that one entry point accepts is a value every other one accepts too. Each
rule raises `InputError(message)`: a sentence fit to show next to the field.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# PostgreSQL integer columns; a larger value must be a field error, not a failed INSERT.
MAX_INT = 2**31 - 1
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 64 * 1024
MAX_URL_LENGTH = 2000

# RFC 9110 token characters for a field name.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Visible ASCII, space and tab; obs-text is refused because clients encode it differently.
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]*$")
# Hop-by-hop and framing fields: the client sets them, a configuration may not.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "expect",
    }
)


class InputError(ValueError):
    """A value a person entered breaks a rule; the message says which."""


@dataclass(frozen=True)
class ParsedURL:
    scheme: str
    host: str  # lower-case, IDNA-encoded; IPv6 without brackets
    port: int
    path: str
    query: str
    username: str
    password: str

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def clean_text(value: str, what: str = "This field") -> str:
    """Return text fit for the database: no NUL, no lone surrogates."""
    if "\x00" in value:
        raise InputError(f"{what} cannot contain a NUL character.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{what} contains an invalid character (a lone surrogate).") from exc
    return value


@functools.lru_cache(maxsize=1024)
def parse_url(text: str, what: str = "URL", allow_credentials: bool = False) -> ParsedURL:
    """Parse an http(s) URL once, the same way for every caller; raise InputError.
    (Every call checks its URL, and the same few URLs come back: the answer is kept.)"""
    text = (text or "").strip()
    if not text:
        raise InputError(f"Enter the {what}.")
    clean_text(text, f"The {what}")
    if len(text) > MAX_URL_LENGTH:
        raise InputError(f"The {what} is longer than {MAX_URL_LENGTH} characters.")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        raise InputError(f"The {what} cannot contain spaces or control characters.")
    try:
        parts = urlsplit(text)
        port = parts.port
        hostname = parts.hostname or ""
    except ValueError as exc:
        raise InputError(f"The {what} is not a valid URL ({exc}).") from exc
    if parts.scheme not in ("http", "https"):
        raise InputError(f"The {what} must start with http:// or https://.")
    if not hostname:
        raise InputError(f"The {what} has no host.")
    if (parts.username or parts.password) and not allow_credentials:
        raise InputError("Put credentials in an auth profile, not in the URL.")
    host = _clean_host(hostname, what)
    return ParsedURL(
        scheme=parts.scheme,
        host=host,
        port=port or (443 if parts.scheme == "https" else 80),
        path=parts.path,
        query=parts.query,
        username=parts.username or "",
        password=parts.password or "",
    )


def _clean_host(hostname: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(hostname))
    except ValueError:
        pass
    try:
        ascii_host = hostname.encode("idna").decode("ascii").lower()
        # An A-label must also decode: xn--a is not a name.
        for label in ascii_host.split("."):
            if label.startswith("xn--"):
                label.encode("ascii").decode("idna")
    except (UnicodeError, ValueError) as exc:
        raise InputError(f"The {what}'s host {hostname!r} is not a valid host name.") from exc
    if not re.fullmatch(r"[a-z0-9._-]+", ascii_host):
        raise InputError(f"The {what}'s host {hostname!r} is not a valid host name.")
    return ascii_host


def origin(url: str) -> str:
    """Return scheme://host:port of a URL; raise InputError if it is not one."""
    return parse_url(url).origin


def route(url: str, proxy_url: str = "") -> str:
    """Return where a request goes: its origin, and the proxy's origin if it has one.

    A stored secret is bound to routes, so adding a proxy is a move like a new host.
    """
    target = origin(url)
    if proxy_url:
        return f"{target} via {parse_url(proxy_url, 'proxy URL', allow_credentials=True).origin}"
    return target


def without_credentials(url: str) -> str:
    """Return a proxy URL as it may be shown: its password masked."""
    try:
        parts = urlsplit(url)
        if not parts.password:
            return url
        netloc = f"{parts.username}:••••@{parts.hostname}" + (
            f":{parts.port}" if parts.port else ""
        )
    except ValueError:
        return "••••"
    return urlunsplit(parts._replace(netloc=netloc))


def check_ca_bundle(text: str) -> str:
    """A CA bundle as PEM text: ASCII certificates that TLS can load."""
    import ssl

    text = (text or "").strip()
    if not text:
        return ""
    if not text.isascii() or "-----BEGIN CERTIFICATE-----" not in text:
        raise InputError("Paste PEM certificates: -----BEGIN CERTIFICATE----- … (ASCII only).")
    try:
        ssl.create_default_context().load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError) as exc:
        raise InputError("The CA bundle is not valid PEM: a certificate does not load.") from exc
    return text


def check_header_name(name: str) -> str:
    name = (name or "").strip()
    if not _HEADER_NAME.match(name):
        raise InputError("Not a valid header name (letters, digits and !#$%&'*+-.^_`|~).")
    if name.lower() in RESERVED_HEADERS:
        raise InputError(f"{name} is set by the client and cannot be overridden.")
    return name


def check_header_value(value: str, what: str = "A header value") -> str:
    if not _HEADER_VALUE.match(value or ""):
        raise InputError(
            f"{what} may hold only printable ASCII characters (no line breaks, no accents)."
        )
    return value


def check_json(value: Any, what: str = "The JSON") -> Any:
    """Refuse JSON nested deeper or larger than a request body needs, or holding NUL."""

    def walk(node: Any, depth: int) -> None:
        if depth > MAX_JSON_DEPTH:
            raise InputError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep.")
        if isinstance(node, dict):
            for key, item in node.items():
                clean_text(str(key), what)
                walk(item, depth + 1)
        elif isinstance(node, list):
            for item in node:
                walk(item, depth + 1)
        elif isinstance(node, str):
            clean_text(node, what)
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > 2**53:
            raise InputError(f"{what} holds a number too large to keep exactly.")

    walk(value, 0)
    if len(json.dumps(value)) > MAX_JSON_BYTES:
        raise InputError(f"{what} is larger than {MAX_JSON_BYTES // 1024} KB.")
    return value


def is_uuid(value) -> bool:
    """Is this text an id (a query or form value naming a row)?"""
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def parse_json_text(text: str, what: str = "The JSON") -> Any:
    """Parse JSON typed by a person, with the same limits as check_json."""
    clean_text(text, what)
    if len(text) > MAX_JSON_BYTES:
        raise InputError(f"{what} is larger than {MAX_JSON_BYTES // 1024} KB.")
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise InputError(f"{what} is nested too deeply.") from exc
    return check_json(value, what)


def check_int(value: int, what: str = "This number", low: int = 0, high: int = MAX_INT) -> int:
    if not low <= value <= high:
        raise InputError(f"{what} must be between {low} and {high}.")
    return value
