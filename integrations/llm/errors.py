"""Classified failures of an LLM call, each with a one-line hint the user can act on."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum


class ErrorKind(StrEnum):
    """Every way a call can fail. A StrEnum, so stored rows and JSON hold the plain value."""

    CONFIG = "config"
    CREDENTIAL = "credential"
    SECRET_ORIGIN = "secret_origin"
    INVALID_URL = "invalid_url"
    DNS = "dns"
    REFUSED = "refused"
    TLS = "tls"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    REDIRECT = "redirect"
    BLOCKED = "blocked"
    AUTH = "auth"
    FORBIDDEN = "forbidden"
    NOT_FOUND_PATH = "not_found_path"
    UNKNOWN_MODEL = "unknown_model"
    BAD_REQUEST = "bad_request"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    NON_JSON = "non_json"
    BAD_RESPONSE = "bad_response"
    OVERSIZED = "oversized"
    HTTP_ERROR = "http_error"
    UNSUPPORTED = "unsupported"


HINTS: dict[str, str] = {
    "config": "Fix the configuration and test again.",
    "credential": "Re-enter the secret in the auth profile or header, or restore the encryption key.",
    "secret_origin": "A stored secret goes only to the origin (scheme, host, port and proxy) it "
    "was entered for. Type the secret again to send it to this one.",
    "invalid_url": "Use an http:// or https:// URL such as https://api.openai.com/v1.",
    "dns": "Check the host name in the endpoint; it does not resolve from this server.",
    "refused": "Nothing listens at that host and port. Check the endpoint and that the server is up.",
    "tls": "The TLS certificate was refused. Add the host's CA bundle, or turn TLS "
    "verification off for a trusted self-signed host.",
    "timeout": "The endpoint did not answer in time. Raise the timeout or check the server's load.",
    "connection": "The connection broke. Check the endpoint, any proxy, and the server's logs.",
    "redirect": "The endpoint redirects. Use the final URL directly; redirects are not followed.",
    "blocked": "That address is not allowed from this console. Private and loopback addresses "
    "need LLM_ALLOW_PRIVATE, LLM_ALLOW_LOOPBACK or LLM_ALLOWED_NETWORKS; metadata and "
    "link-local addresses are always refused.",
    "auth": "Check the auth profile: the key, the header name and the scheme.",
    "forbidden": "The key is valid but lacks access to this model or endpoint. Check its permissions.",
    "not_found_path": "The URL does not exist. Check the endpoint: most servers serve under /v1, "
    "and the path must not be doubled.",
    "unknown_model": "The endpoint does not know this model. Check the Model ID.",
    "bad_request": "The endpoint rejected the request. Check the request body and parameters.",
    "too_large": "The request is too large for the endpoint. Shorten the prompt or lower max_tokens.",
    "rate_limited": "Rate limited or out of quota. Wait and retry, or check the provider's billing.",
    "server_error": "The endpoint failed on its side. Retry later or check the server's logs.",
    "non_json": "The endpoint did not answer JSON. Check that the URL points at the API, "
    "not a web page.",
    "bad_response": "The answer is not in the expected shape. Check the protocol, or the "
    "response paths of a custom template.",
    "oversized": "The answer exceeds the size cap. Lower max_tokens or raise LLM_MAX_RESPONSE_BYTES.",
    "http_error": "The endpoint answered with an error. Read its message above.",
    "unsupported": "This model's protocol cannot carry that. Leave it out, or give the model "
    "a custom request body that maps it.",
}

TITLES: dict[str, str] = {
    "config": "Configuration error",
    "credential": "Credential unreadable",
    "secret_origin": "Secret not bound to this origin",
    "invalid_url": "Invalid URL",
    "dns": "Host not found",
    "refused": "Connection refused",
    "tls": "TLS error",
    "timeout": "Timed out",
    "connection": "Connection failed",
    "redirect": "Redirect not followed",
    "blocked": "Address blocked",
    "auth": "Authentication failed",
    "forbidden": "Access denied",
    "not_found_path": "Path not found",
    "unknown_model": "Unknown model",
    "bad_request": "Bad request",
    "too_large": "Request too large",
    "rate_limited": "Rate limited",
    "server_error": "Server error",
    "non_json": "Not JSON",
    "bad_response": "Unexpected response",
    "oversized": "Response too large",
    "http_error": "HTTP error",
    "unsupported": "Not supported by this model",
}


# How servers say a 400 is about the model name: OpenAI and vLLM ("does not exist"),
# llama.cpp and Ollama ("not found"), LiteLLM ("Invalid model name passed in model=...").
UNKNOWN_MODEL_WORDS = ("not found", "does not exist", "invalid model", "unknown model")

# What an HTTP error status means, said after "401 from the endpoint: ".
STATUS_SENTENCES: dict[str, str] = {
    "auth": "the credentials were refused",
    "forbidden": "access to this model or endpoint is denied",
    "not_found_path": "no API at this URL",
    "unknown_model": "the model is unknown there",
    "bad_request": "the request was rejected",
    "too_large": "the request is too large",
    "rate_limited": "rate limited or out of quota",
    "server_error": "the server failed",
    "http_error": "the request failed",
}


@dataclass
class LLMError(Exception):
    """A failure with a kind (see HINTS), a short message and a hint."""

    kind: str
    message: str
    status: int | None = None
    upstream_message: str = ""
    param: str = ""  # the request field a refusal is about
    retry_after: float | None = None  # seconds until the upstream says to try again

    def __post_init__(self) -> None:
        self.kind = ErrorKind(self.kind)
        super().__init__(self.message)

    @property
    def hint(self) -> str:
        return HINTS.get(self.kind, "")

    @property
    def title(self) -> str:
        return TITLES.get(self.kind, "Error")

    @property
    def headline(self) -> str:
        """Title and message in one line, without saying the same thing twice
        ("Connection refused: Connection refused." reads as a stutter)."""
        if _words(self.message).startswith(_words(self.title)):
            return self.message
        return f"{self.title}: {self.message}"

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "title": self.title,
            "message": self.message,
            "hint": self.hint,
            "status": self.status,
            "upstream_message": self.upstream_message,
        }


def _words(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c == " ").split())


# How the common gateways refuse a key with a status other than 401: LiteLLM answers 400
# "Authentication Error …" (type auth_error), or "No connected db." when its virtual keys
# cannot be checked; Portkey and OpenRouter say so in the message.
AUTH_REFUSALS = ("authentication error", "auth_error", "no connected db", "invalid api key",
                 "invalid_api_key", "incorrect api key", "no auth credentials", "api key not valid",
                 "missing api key", "invalid x-api-key")  # fmt: skip


def classify_status(status: int, body_text: str, upstream_message: str) -> str:
    """Return the error kind for an HTTP error status."""
    if status == 401:
        return "auth"
    if status in (400, 403) and _says_auth(upstream_message, body_text):
        return "auth"
    if status == 403:
        return "forbidden"
    if status == 404:
        lowered = (upstream_message or body_text[:2000]).lower()
        return "unknown_model" if "model" in lowered else "not_found_path"
    if status in (413,):
        return "too_large"
    if status == 429:
        return "rate_limited"
    if status in (400, 422):
        lowered = upstream_message.lower()
        if "model" in lowered and any(words in lowered for words in UNKNOWN_MODEL_WORDS):
            return "unknown_model"
        return "bad_request"
    if status >= 500:
        return "server_error"
    return "http_error"


def _says_auth(upstream_message: str, body_text: str) -> bool:
    lowered = f"{upstream_message} {body_text[:2000]}".lower()
    return any(words in lowered for words in AUTH_REFUSALS)


# How long an upstream asks callers to wait, most precise first: OpenAI's and Azure's
# retry-after-ms, the standard Retry-After (seconds or an HTTP date), then the reset
# times of OpenAI's (`6m0s`, `20ms`) and Anthropic's (RFC 3339) rate-limit headers.
MAX_RETRY_AFTER = 3600.0
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def retry_after(headers, now: float | None = None) -> float | None:
    """Seconds to wait before calling again, as the reply's headers say, or None."""
    now = time.time() if now is None else now
    waits = []
    for name in ("retry-after-ms", "retry-after"):
        value = (headers.get(name) or "").strip()
        if value:
            waits.append(_seconds(value, now, millis=name.endswith("-ms")))
            break
    if not waits or waits[0] is None:
        for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens",
                     "anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset"):  # fmt: skip
            value = (headers.get(name) or "").strip()
            if value:
                waits.append(_seconds(value, now))
    found = [w for w in waits if w is not None]
    return min(max(found), MAX_RETRY_AFTER) if found else None


def remaining(headers) -> tuple[int | None, int | None] | None:
    """(requests, tokens) the upstream says are left in its rate-limit window (OpenAI's
    x-ratelimit-remaining-*, Anthropic's anthropic-ratelimit-*-remaining), or None."""
    found = []
    for kind in ("requests", "tokens"):
        value = headers.get(f"x-ratelimit-remaining-{kind}") or headers.get(
            f"anthropic-ratelimit-{kind}-remaining"
        )
        try:
            number = int(str(value).strip()) if value is not None else None
        except ValueError:
            number = None
        found.append(number if number is None or number >= 0 else None)
    return tuple(found) if found != [None, None] else None


def _seconds(value: str, now: float, millis: bool = False) -> float | None:
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if number != number or number < 0:  # NaN or negative: not a wait
            return None
        return number / 1000 if millis else number
    if (parts := _DURATION.findall(value)) and "".join(n + u for n, u in parts) == value:
        return sum(float(n) * _UNITS[u] for n, u in parts)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
