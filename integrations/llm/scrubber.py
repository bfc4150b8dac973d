"""The one scrubber: every secret out of what an upstream sends, teaching nothing.

What is masked:
- each secret whole, and the tokens inside it that are keys themselves (the K of
  "Bearer K"), in every encoding an upstream may echo (URL-encoded, JSON-escaped,
  \\u-escaped, base64), also behind mixed escapes (undone and searched again);
- a fragment of a secret only when it holds at least 64 bits of the secret beyond its
  public vendor prefix (sk-proj-, sk-ant-api03-, ...).

Why no shorter fragments: the text scrubbed is often text the caller chose ("Repeat
exactly: sk-proj-AbC"). Masking any 8-character run made the scrubber an oracle: the one
candidate whose reply came back masked named the next character of the key. To learn
anything from a mask now, a caller must already know 64 bits of the secret in a row.

A stream is held back by a rule that knows only what is public about the secrets (their
vendor prefix and which classes of characters they use), never their characters: which
part of a reply waits for the next delta tells a caller nothing either.
"""

from __future__ import annotations

import base64
import bisect
import functools
import itertools
import json
import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

MASK = "••••"
ENTROPY_BITS = 64  # what a fragment must hold of a secret, beyond its public prefix
MIN_SECRET = 4  # shorter values are not secrets anyone could find in a reply
HOLD_WINDOW = 4096  # a stream holds back at most this much (or the longest secret form)

# Public prefixes vendors put on their keys (longest first when matched). What a key
# starts with says which vendor made it, which the model's name says anyway.
VENDOR_PREFIXES = sorted(
    (
        "sk-ant-api03-",
        "sk-ant-admin01-",
        "sk-ant-",
        "sk-proj-",
        "sk-svcacct-",
        "sk-admin-",
        "sk-or-v1-",
        "sk-byo-",
        "sk-",
        "gsk_",
        "xai-",
        "pplx-",
        "hf_",
        "ghp_",
        "gho_",
        "github_pat_",
        "glpat-",
        "AIza",
        "r8_",
        "nvapi-",
        "fw_",
        "byo_",
        "ya29.",
        "csk-",
        "Bearer ",
        "Basic ",
        "Token ",
    ),  # fmt: skip
    key=len,
    reverse=True,
)
# Leading words and separators ("sk-canary-", "live_") count as public when estimating how
# much of a secret a fragment holds: erring that way masks fewer fragments, never more.
_WORDS = re.compile(r"(?:[A-Za-z]{1,12}\d{0,3}[-_.])+")

# Classes of characters. A secret's alphabet is the union of the classes it uses, so the
# alphabet says nothing about which characters of a class the secret holds.
_CLASSES = (
    string.digits,
    string.ascii_lowercase,
    string.ascii_uppercase,
    "-_",
    "+/=",
    ".~",
    "!\"#$&'()*,:;<>?@[]^`{|}",
    "%\\",
)
_NON_ASCII = len(_CLASSES)
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPES = re.compile(r"\\u([0-9a-fA-F]{4})|\\([/\\\"])|%([0-9a-fA-F]{2})")
_HEX = "[0-9A-Fa-f]"
# An escape cut short at the end of what has arrived: it may still spell a secret.
_PARTIAL_ESCAPE = rf"%{_HEX}?|\\(?:u{_HEX}{{0,3}})?"


def vendor_prefix(secret: str) -> str:
    return next((p for p in VENDOR_PREFIXES if secret.startswith(p)), "")


def _public_length(secret: str) -> int:
    """How much of the start is public: vendor prefixes and leading words ("Bearer sk-")."""
    at = 0
    while True:
        rest = secret[at:]
        words = _WORDS.match(rest)
        step = max(len(vendor_prefix(rest)), words.end() if words else 0)
        if not step:
            return at
        at += step


def _classes(text: str) -> frozenset[int]:
    used = {i for i, chars in enumerate(_CLASSES) if any(c in chars for c in text)}
    if any(ord(c) > 127 for c in text):
        used.add(_NON_ASCII)
    return frozenset(used)


def _class_re(classes: frozenset[int]) -> str:
    """A regex character class for these classes ("" for none)."""
    if not classes:
        return ""
    chars = "".join(_CLASSES[i] for i in sorted(classes) if i != _NON_ASCII)
    return "[" + re.escape(chars) + ("\u0080-\uffff" if _NON_ASCII in classes else "") + "]"


def _bits_per_char(body: str) -> float:
    # Counting the characters actually used under-estimates a random key's alphabet, so a
    # fragment must be longer to count: the safe side.
    return math.log2(max(2, len(set(body))))


def _utf16(c: str) -> list[int]:
    """A character's UTF-16 code units, as JSON's \\u escapes spell it."""
    data = c.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


# Each way an upstream may spell a secret, one character at a time.
SPELLINGS: tuple[Callable[[str], str], ...] = (
    lambda c: c,
    lambda c: quote(c, safe=""),
    quote,
    quote_plus,
    lambda c: json.dumps(c)[1:-1],
    lambda c: json.dumps(c, ensure_ascii=False)[1:-1],
    lambda c: json.dumps(c)[1:-1].replace("/", "\\/"),
    lambda c: "".join(f"\\u{u:04x}" for u in _utf16(c)),
    lambda c: "".join(f"\\u{u:04X}" for u in _utf16(c)),
)


@dataclass
class _Form:
    text: str
    public: str  # what the vendor prefix makes public, as this form spells it
    classes: frozenset[int]  # the classes of the form's other characters
    fragments: set[str]


def _spelled_form(secret: str, public: int, vendor: int, need: int, spell) -> _Form:
    """A secret spelled one character at a time; with `need`, its fragments too: each
    stretch from a body character on that holds `need` body characters whole."""
    pieces = [spell(c) for c in secret]
    ends = list(itertools.accumulate(len(p) for p in pieces))
    starts = [e - len(p) for e, p in zip(ends, pieces, strict=True)]
    text = "".join(pieces)
    fragments: set[str] = set()
    if need and len(secret) - public >= need:
        for a in range(starts[public], len(text)):
            first = bisect.bisect_left(starts, a)  # the first character held whole
            last = first + need - 1
            if last >= len(secret):
                break
            fragments.add(text[a : ends[last]])
    cut = ends[vendor - 1] if vendor else 0
    return _Form(text, text[:cut], _classes(text[cut:]), fragments)


def _base64_forms(secret: str, public: int, vendor: int, bits: float) -> list[_Form]:
    data = secret.encode()
    public_bytes = len(secret[:public].encode())
    body_bytes = len(data) - public_bytes
    forms = []
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(data).decode().rstrip("=")
        fragments: set[str] = set()
        if body_bytes and bits:
            need = math.ceil(ENTROPY_BITS * body_bytes / (bits * (len(secret) - public)))
            for a in range(len(text)):
                first = max(public_bytes, -(-6 * a // 8))  # the first body byte held whole
                end = -(-8 * (first + need) // 6)
                if first + need > len(data) or end > len(text):
                    break
                fragments.add(text[a:end])
        cut = 8 * len(secret[:vendor].encode()) // 6
        forms.append(_Form(text, text[:cut], _classes(text[cut:]), fragments))
    return forms


def _parts(secret: str) -> set[str]:
    """A secret and the tokens inside it that are keys themselves ("Bearer K", "user:K")."""
    parts = {secret}
    for part in re.split(r"[\s:]+", secret):
        public = _public_length(part)
        if (len(part) - public) * _bits_per_char(part[public:]) >= ENTROPY_BITS:
            parts.add(part)
    return parts


@functools.lru_cache(maxsize=512)
def _forms(secret: str) -> tuple[_Form, ...]:
    """Every spelling of a secret and its key-like parts. Fragments are listed for the
    plain spelling and base64 only: escaped text is searched again once its escapes are
    undone, and a stream's hold rule takes any spelling of the prefix
    (see `_beginnings`), so the plain spelling's prefix and classes stand for all."""
    forms: list[_Form] = []
    for part in _parts(secret):
        public, vendor = _public_length(part), len(vendor_prefix(part))
        body = part[public:]
        bits = _bits_per_char(body) if body else 0.0
        need = math.ceil(ENTROPY_BITS / bits) if bits else 0
        plain, *others = SPELLINGS
        forms.append(_spelled_form(part, public, vendor, need, plain))
        forms += [_Form(t, "", frozenset(), set()) for t in {spell_all(part, s) for s in others}]
        forms += _base64_forms(part, public, vendor, bits)
    return tuple(f for f in forms if len(f.text) >= MIN_SECRET)


def spell_all(secret: str, spell) -> str:
    return "".join(spell(c) for c in secret)


def _trie(words) -> str:
    """A regex matching any of the words, shaped as a trie so each position is cheap."""
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


def _spellings_re(c: str) -> str:
    """A regex for one character as an upstream may spell it: itself, %XX, \\uXXXX, \\/."""
    percent = "".join(
        f"%[{h[0].upper()}{h[0]}][{h[1].upper()}{h[1]}]" for h in c.encode().hex(" ").split()
    )
    escaped = "".join("\\\\u" + "".join(f"[{d.upper()}{d}]" for d in f"{u:04x}") for u in _utf16(c))
    out = [re.escape(c), percent, escaped] + ([r"\\/"] if c == "/" else [])
    return "(?:" + "|".join(out) + ")"


def _beginnings(public: str, classes: frozenset[int]) -> str:
    """A regex for every beginning of `public` followed by characters of `classes`, as the
    text that has arrived so far may end (an escape cut short included)."""
    alphabet = _class_re(classes)
    unit = f"(?:{alphabet}|%{_HEX}{{2}}|\\\\u{_HEX}{{4}}|\\\\/)" if alphabet else ""
    pattern = f"{unit}*(?:{_PARTIAL_ESCAPE})?" if unit else f"(?:{_PARTIAL_ESCAPE})?"
    for c in reversed(public):
        pattern = f"(?:{_spellings_re(c)}(?:{pattern})?|{_PARTIAL_ESCAPE})"
    return pattern


class Scrubber:
    """Finds the secrets of one configuration in text an upstream sent."""

    def __init__(self, secrets: tuple[str, ...]):
        self.secrets = tuple(sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len))
        forms = [f for s in self.secrets for f in _forms(s)]
        self.shown: dict[str, str] = {}  # a whole form -> the secret it spells
        for secret in self.secrets:
            for form in _forms(secret):
                self.shown.setdefault(form.text, secret)
        whole = sorted(self.shown, key=len, reverse=True)
        self._whole_re = re.compile("|".join(map(re.escape, whole))) if whole else None
        fragments = set().union(*(f.fragments for f in forms)) if forms else set()
        self._fragment_re = re.compile("(?=(" + _trie(fragments) + "))") if fragments else None
        self.longest = max((len(w) for w in whole), default=0)
        self.shortest = min((len(w) for w in [*whole, *fragments]), default=0)
        holds = {(f.public, f.classes) for f in forms if f.public or f.classes}
        holds = sorted(holds, key=lambda h: (h[0], sorted(h[1])))
        self._hold_re = (
            re.compile("(?:" + "|".join(_beginnings(p, c) for p, c in holds) + r")\Z")
            if holds
            else None
        )
        union = frozenset().union(*(c for _, c in holds)) | {_CLASSES.index("%\\")}
        union |= _classes("".join(p for p, _ in holds))
        self._reversed_run = re.compile(f"{_class_re(frozenset(union))}*")
        self.window = max(HOLD_WINDOW, self.longest)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Return the stretches to mask, merged where they overlap."""
        found = []
        if self._whole_re is not None:
            found += [(m.start(), m.end()) for m in self._whole_re.finditer(text)]
        if self._fragment_re is not None:
            found += [(m.start(), m.end(1)) for m in self._fragment_re.finditer(text)]
        merged: list[list[int]] = []
        for start, end in sorted(found):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return [(a, b) for a, b in merged]

    @staticmethod
    def masked(text: str, spans, start: int = 0) -> str:
        """`text[start:]` with each span masked (a span may begin before `start`)."""
        out, at = [], start
        for a, b in spans:
            if b <= at:
                continue
            out += [text[at : max(a, at)], MASK]
            at = b
        out.append(text[at:])
        return "".join(out)

    def text(self, text: str, _depth: int = 0) -> str:
        """Return text safe to keep and show: secrets masked, also behind (nested) escapes,
        and lone surrogates (which no database or page can encode) replaced."""
        text = _SURROGATE.sub("\ufffd", text)
        if not self or len(text) < self.shortest:  # undoing escapes only shortens a text
            return text
        return self.unescaped(self.masked(text, self.spans(text)), _depth)

    def unescaped(self, scrubbed: str, depth: int = 0) -> str:
        decoded = _decoded(scrubbed)
        if decoded == scrubbed or depth >= 3:
            return scrubbed
        # A secret that shows only once the escapes are undone: keep the decoded, masked text.
        deeper = self.text(decoded, depth + 1)
        return deeper if deeper != decoded else scrubbed

    def json(self, value):
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.json(v) for k, v in value.items()}
        return value

    def tail(self, text: str, limit: int) -> int:
        """How many characters at the end of `text` could belong to a secret's spelling."""
        return self._reversed_run.match(text[-limit:][::-1]).end() if limit else 0

    def hold_from(self, text: str) -> int:
        """Where the end of `text` that may still become a secret begins (len: none).

        Only public facts decide: a secret's vendor prefix, spelled any way, and the
        classes of characters after it. A secret is at most `longest` characters, so an
        unfinished one begins within the last `window` characters."""
        if self._hold_re is None:
            return len(text)
        begin = len(text) - self.tail(text, self.window)
        found = self._hold_re.search(text, begin)
        return found.start() if found else len(text)

    def stream(self) -> StreamScrubber:
        return StreamScrubber(self)

    def own(self, text: str) -> str:
        """Our own request as it may be shown: each secret as its last 4 characters at most."""
        from integrations.secrets import mask

        if self._whole_re is None or not text:
            return text
        return self._whole_re.sub(lambda m: mask(self.shown[m.group()]), text)


def _decoded(text: str) -> str:
    """Undo JSON and URL escapes, the way a page that pretty-prints a body would."""

    def one(m: re.Match) -> str:
        if m.group(1):
            return chr(int(m.group(1), 16))
        if m.group(2):
            return m.group(2)
        return chr(int(m.group(3), 16))

    return _ESCAPES.sub(one, text)


class StreamScrubber:
    """Scrubs a reply that arrives in pieces.

    What may still become a secret is held back (Scrubber.hold_from: public facts only).
    What is let go is searched together with the characters before it that a fragment
    could have begun in (`context`), so a fragment spanning deltas is masked from where
    it is found on."""

    def __init__(self, scrubber: Scrubber):
        self.scrubber = scrubber
        self.pending = ""
        self.context = ""

    def feed(self, delta: str) -> str:
        delta = _SURROGATE.sub("\ufffd", delta)
        if not self.scrubber:
            return delta
        self.pending += delta
        return self._let_go(self.scrubber.hold_from(self.pending))

    def flush(self) -> str:
        return self._let_go(len(self.pending)) if self.scrubber else ""

    def _let_go(self, cut: int) -> str:
        if cut <= 0:
            return ""
        sc = self.scrubber
        ready, self.pending = self.pending[:cut], self.pending[cut:]
        seen = self.context + ready
        # Most deltas are a word: shorter than anything that could be masked.
        spans = sc.spans(seen) if len(seen) >= sc.shortest else ()
        out = sc.masked(seen, spans, len(self.context)) if spans else ready
        kept = sc.tail(seen, sc.longest)
        self.context = seen[len(seen) - kept :] if kept else ""
        return sc.unescaped(out) if "%" in out or "\\" in out else out


@functools.lru_cache(maxsize=256)
def scrubber(secrets: tuple[str, ...]) -> Scrubber:
    return Scrubber(secrets)
