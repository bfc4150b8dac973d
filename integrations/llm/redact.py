"""What a secret looks like on screen, in logs, in test records and in the audit trail."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from integrations.llm.scrubber import _SURROGATE, Scrubber, StreamScrubber, scrubber
from integrations.secrets import MASK, mask

__all__ = ["Scrubber", "StreamScrubber", "scrub", "scrub_json", "scrubber"]

SENSITIVE_HEADERS = {
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
}


def scrub(text: str, secrets) -> str:
    """Return upstream text with every secret masked (see integrations.llm.scrubber)."""
    return scrubber(tuple(secrets)).text(text)


def scrub_json(value: Any, secrets) -> Any:
    return scrubber(tuple(secrets)).json(value)


def redact_header(name: str, value: str, secrets: list[str], secret: bool = False) -> str:
    """Return a header value as it may be shown: `Bearer ••••abcd`."""
    scrubbed = scrubber(tuple(secrets)).own(value)
    if scrubbed != value:
        return scrubbed
    if secret or name.lower() in SENSITIVE_HEADERS:
        scheme, _, rest = value.partition(" ")
        if rest and scheme.lower() in ("bearer", "basic", "token"):
            return f"{scheme} {mask(rest)}"
        return mask(value) or MASK
    return value


def redact_url(url: str, secrets: list[str]) -> str:
    own = scrubber(tuple(secrets)).own
    parts = urlsplit(url)
    if not parts.query:
        return own(url)
    query = [(k, own(v)) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
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
        "body": _own_json(body, scrubber(tuple(secrets))),
    }


def _own_json(value: Any, sc: Scrubber) -> Any:
    if isinstance(value, str):
        return sc.own(value)
    if isinstance(value, list):
        return [_own_json(v, sc) for v in value]
    if isinstance(value, dict):
        return {k: _own_json(v, sc) for k, v in value.items()}
    return value


def excerpt(text: str, secrets: list[str], limit: int = 4000) -> str:
    """Return a capped, scrubbed excerpt of a response body."""
    text = scrub(text, secrets)
    return (
        text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more characters)"
    )


def pretty(value: Any) -> str:
    """Return stored JSON (or JSON text) indented for reading. Decoding can bring back what
    escapes hid, so the result has no lone surrogate; nesting too deep stays as it was."""
    try:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return _SURROGATE.sub("\ufffd", value)
        text = json.dumps(value, indent=2, ensure_ascii=False)
    except RecursionError:
        return _SURROGATE.sub("\ufffd", value if isinstance(value, str) else "(nested too deeply)")
    return _SURROGATE.sub("\ufffd", text)


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
