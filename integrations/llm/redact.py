"""What a secret looks like on screen, in logs, in test records and in the audit trail."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from integrations.secrets import MASK, mask

SENSITIVE_HEADERS = {
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
}


def scrub(text: str, secrets: list[str]) -> str:
    """Replace every occurrence of a secret in text by its mask."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, mask(secret))
    return text


def scrub_json(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, list):
        return [scrub_json(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: scrub_json(v, secrets) for k, v in value.items()}
    return value


def redact_header(name: str, value: str, secrets: list[str], secret: bool = False) -> str:
    """Return a header value as it may be shown: `Bearer ••••abcd`."""
    scrubbed = scrub(value, secrets)
    if scrubbed != value:
        return scrubbed
    if secret or name.lower() in SENSITIVE_HEADERS:
        scheme, _, rest = value.partition(" ")
        if rest and scheme.lower() in ("bearer", "basic", "token"):
            return f"{scheme} {mask(rest)}"
        return mask(value) or MASK
    return value


def redact_url(url: str, secrets: list[str]) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return scrub(url, secrets)
    query = [(k, scrub(v, secrets)) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="•")))


def redact_request(
    method: str,
    url: str,
    headers: dict[str, str],
    body: Any,
    secrets: list[str],
    secret_headers: set[str] = frozenset(),
) -> dict:
    """Return the request as it may be shown and stored."""
    return {
        "method": method,
        "url": redact_url(url, secrets),
        "headers": {
            k: redact_header(k, v, secrets, k.lower() in secret_headers) for k, v in headers.items()
        },
        "body": scrub_json(body, secrets),
    }


def excerpt(text: str, secrets: list[str], limit: int = 4000) -> str:
    """Return a capped, scrubbed excerpt of a response body."""
    text = scrub(text, secrets)
    return (
        text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more characters)"
    )


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def curl_from_redacted(request: dict) -> str:
    """Return a curl command for a stored, redacted request: masked values become $API_KEY."""

    def quote(text: str) -> str:
        if MASK in text:
            text = re.sub(rf"{MASK}\S*", "${API_KEY}", text)
            return '"' + re.sub(r'(["\\`])', r"\\\1", text) + '"'
        return "'" + text.replace("'", "'\\''") + "'"

    lines = [f"curl -X {request.get('method', 'POST')} {quote(request.get('url', ''))}"]
    lines += [f"  -H {quote(f'{k}: {v}')}" for k, v in (request.get("headers") or {}).items()]
    if request.get("body") is not None:
        lines.append(f"  --data-raw {quote(json.dumps(request['body'], ensure_ascii=False))}")
    return " \\\n".join(lines)
