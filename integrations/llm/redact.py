"""What a secret looks like on screen, in logs, in test records and in the audit trail."""

from __future__ import annotations

import base64
import functools
import json
import re
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

from integrations.secrets import MASK, mask

SENSITIVE_HEADERS = {
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
}


# A run of this many characters of a secret is treated as the secret itself.
FRAGMENT = 8


def _forms(secret: str) -> set[str]:
    """Return a secret, its meaningful parts and the encodings an upstream may echo."""
    # The token inside "Bearer K" or "user:K"; short parts such as "Bearer" are words, not keys.
    parts = {secret} | {p for p in re.split(r"[\s:]+", secret) if len(p) >= FRAGMENT}
    forms: set[str] = set()
    for part in parts:
        forms |= {
            part,
            quote(part, safe=""),
            quote(part),
            quote_plus(part),
            json.dumps(part)[1:-1],
            json.dumps(part, ensure_ascii=False)[1:-1],
            json.dumps(part)[1:-1].replace("/", "\\/"),
            "".join(f"\\u{ord(c):04x}" for c in part),
            "".join(f"\\u{ord(c):04X}" for c in part),
            base64.b64encode(part.encode()).decode().rstrip("="),
            base64.urlsafe_b64encode(part.encode()).decode().rstrip("="),
        }
    return {f for f in forms if len(f) >= 4}


_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPES = re.compile(r"\\u([0-9a-fA-F]{4})|\\(/)|%([0-9a-fA-F]{2})")


def _decoded(text: str) -> str:
    """Undo JSON and URL escapes, the way a page that pretty-prints a body would."""

    def one(m: re.Match) -> str:
        if m.group(1):
            return chr(int(m.group(1), 16))
        if m.group(2):
            return "/"
        return chr(int(m.group(3), 16))

    return _ESCAPES.sub(one, text)


def _trie(words: set[str]) -> str:
    """Return a regex matching any of the words, shaped as a trie so each position is cheap."""
    root: dict = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def pattern(node: dict) -> str:
        branches = [re.escape(c) + pattern(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return pattern(root)


class Scrubber:
    """Finds every secret in text an upstream sent: whole, in part, or encoded."""

    def __init__(self, secrets: tuple[str, ...]):
        self.whole: dict[str, str] = {}  # a form of a secret -> what is shown instead
        for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len):
            for form in _forms(secret):
                self.whole[form] = mask(secret)
        grams = {f[i : i + FRAGMENT] for f in self.whole for i in range(len(f) - FRAGMENT + 1)}
        alternatives = sorted(self.whole, key=len, reverse=True)
        self._whole_re = (
            re.compile("|".join(re.escape(f) for f in alternatives)) if alternatives else None
        )
        self._gram_re = re.compile("(?=" + _trie(grams) + ")") if grams else None
        self.longest = max((len(f) for f in self.whole), default=0)
        # Every form in one string: a run found across the separator only holds back more.
        self.joined_forms = "\n".join(self.whole)

    def __bool__(self) -> bool:
        return bool(self.whole)

    def _spans(self, text: str) -> list[tuple[int, int, str]]:
        """Return the (start, end, shown) stretches to mask, merged where they overlap."""
        whole = []
        if self._whole_re is not None:
            whole = [(m.start(), m.end()) for m in self._whole_re.finditer(text)]
        grams = []
        if self._gram_re is not None:
            grams = [(m.start(), m.start() + FRAGMENT) for m in self._gram_re.finditer(text)]
        merged: list[list[int]] = []
        for start, end in sorted(whole + grams):
            if merged and start < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        exact = set(whole)
        return [(a, b, self.whole[text[a:b]] if (a, b) in exact else MASK) for a, b in merged]

    def _apply(self, text: str, spans) -> str:
        out, at = [], 0
        for start, end, shown in spans:
            out += [text[at:start], shown]
            at = end
        out.append(text[at:])
        return "".join(out)

    def text(self, text: str, _depth: int = 0) -> str:
        """Return text safe to keep and show: secrets masked, also behind (nested) escapes,
        and lone surrogates (which no database or page can encode) replaced."""
        text = _SURROGATE.sub("\ufffd", text)
        if not self or not text:
            return text
        scrubbed = self._apply(text, self._spans(text))
        decoded = _decoded(scrubbed)
        if decoded == scrubbed or _depth >= 3:
            return scrubbed
        # A secret that shows only once the escapes are undone: keep the decoded, masked text.
        deeper = self.text(decoded, _depth + 1)
        return deeper if deeper != decoded else scrubbed

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.json(v) for k, v in value.items()}
        return value

    def stream(self) -> StreamScrubber:
        return StreamScrubber(self)


class StreamScrubber:
    """Scrubs a reply that arrives in pieces: holds back only what may start a secret."""

    def __init__(self, scrubber: Scrubber):
        self.scrubber = scrubber
        self.pending = ""

    def _held(self) -> int:
        """The length of the longest end of `pending` found inside a secret's form. A run
        inside a form has every shorter end inside it too, so the search grows from one
        character and stops at the first miss (most deltas miss at once)."""
        forms, held = self.scrubber.joined_forms, 0
        for k in range(1, min(len(self.pending), self.scrubber.longest) + 1):
            if self.pending[-k:] not in forms:
                break
            held = k
        return held

    def feed(self, delta: str) -> str:
        delta = _SURROGATE.sub("\ufffd", delta)
        if not self.scrubber:
            return delta
        self.pending += delta
        spans = self.scrubber._spans(self.pending)
        cut = len(self.pending) - self._held()
        for start, end, _ in spans:
            if start < cut < end:
                cut = start
        ready = [s for s in spans if s[1] <= cut]
        out = self.scrubber._apply(self.pending[:cut], ready)
        self.pending = self.pending[cut:]
        return out

    def flush(self) -> str:
        out, self.pending = self.scrubber.text(self.pending), ""
        return out


@functools.lru_cache(maxsize=256)
def scrubber(secrets: tuple[str, ...]) -> Scrubber:
    return Scrubber(secrets)


def scrub(text: str, secrets) -> str:
    """Replace every secret (whole, encoded, or any 8-character run of it) by a mask."""
    return scrubber(tuple(secrets)).text(text)


def scrub_json(value: Any, secrets) -> Any:
    return scrubber(tuple(secrets)).json(value)


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
