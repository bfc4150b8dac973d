"""The auth-kind registry: each way to authenticate, and the one rule for where a secret
may go.

Each kind says its label, which configuration fields it uses and requires, which of
them is its secret, and how it signs a request. Model choices, the forms, the
templates' show/hide, the REST API's schema and the client all derive from
`AUTH_KINDS`: a new auth kind is one entry here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.core.cache import cache

from integrations.llm import inputs, transport
from integrations.llm.errors import ErrorKind, LLMError
from integrations.llm.redact import scrubber
from integrations.secrets import decrypt, encrypt

UPSTREAM_MESSAGE_LIMIT = 300

# apply(auth, url, headers, body, options, timeout) -> (url, extra secrets to scrub)
Apply = Callable[[Any, str, dict, Any, transport.ClientOptions, float], tuple[str, list[str]]]


@dataclass(frozen=True)
class AuthKindSpec:
    key: str
    label: str
    fields: tuple[str, ...]  # AuthConfig attributes this kind uses
    required: tuple[str, ...]  # of those, the ones it cannot do without
    secret: str | None  # the attribute holding its secret (a stored secret stands for it)
    apply: Apply


def _no_auth(auth, url, headers, body, options, timeout):
    return url, []


def _bearer(auth, url, headers, body, options, timeout):
    headers["Authorization"] = f"Bearer {auth.token}"
    return url, []


def _header(auth, url, headers, body, options, timeout):
    headers[auth.header_name] = auth.token
    return url, []


def _basic(auth, url, headers, body, options, timeout):
    pair = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
    headers["Authorization"] = "Basic " + pair
    return url, [pair]


def _query(auth, url, headers, body, options, timeout):
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(auth.query_param, auth.token)]
    return urlunsplit(parts._replace(query=urlencode(query))), []


def _body(auth, url, headers, body, options, timeout):
    if body is None:
        raise LLMError(ErrorKind.CONFIG, "This request has no JSON body to carry the token.")
    if not isinstance(body, dict):
        raise LLMError(
            ErrorKind.CONFIG,
            "The auth profile puts the token in the JSON body, but the body is not an object.",
        )
    parts = [p for p in auth.body_path.split(".") if p]
    node = body
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise LLMError(
                ErrorKind.CONFIG, f"The body field path {auth.body_path!r} runs into a non-object."
            )
    node[parts[-1]] = auth.token
    return url, []


def _oauth2(auth, url, headers, body, options, timeout):
    token = oauth_token(auth, options, timeout)
    headers["Authorization"] = f"Bearer {token}"
    return url, [token]


AUTH_KINDS: dict[str, AuthKindSpec] = {
    spec.key: spec
    for spec in (
        AuthKindSpec("none", "No authentication", (), (), None, _no_auth),
        AuthKindSpec("bearer", "Bearer token", ("token",), ("token",), "token", _bearer),
        AuthKindSpec(
            "header",
            "Custom header",
            ("header_name", "token"),
            ("header_name", "token"),
            "token",
            _header,
        ),
        AuthKindSpec(
            "basic",
            "HTTP basic",
            ("username", "password"),
            ("username", "password"),
            "password",
            _basic,
        ),
        AuthKindSpec(
            "query",
            "API key in query parameter",
            ("query_param", "token"),
            ("query_param", "token"),
            "token",
            _query,
        ),
        AuthKindSpec(
            "body",
            "Token in JSON body",
            ("body_path", "token"),
            ("body_path", "token"),
            "token",
            _body,
        ),
        AuthKindSpec(
            "oauth2",
            "OAuth2 client credentials",
            ("token_url", "client_id", "client_secret", "scope"),
            ("token_url", "client_id", "client_secret"),
            "client_secret",
            _oauth2,
        ),
    )
}
# Every field any kind uses, in the order the forms show them.
FIELD_LABELS = {
    "header_name": "Header name",
    "query_param": "Query parameter",
    "body_path": "Body field path",
    "token": "API key / token",
    "username": "Username",
    "password": "Password",
    "token_url": "Token URL",
    "client_id": "Client ID",
    "client_secret": "Client secret",
    "scope": "Scope",
}


def kinds_using(field: str) -> list[str]:
    """Return the kinds whose forms show this field (for the templates' show/hide)."""
    return [key for key, spec in AUTH_KINDS.items() if field in spec.fields]


def apply(auth, url: str, headers: dict, body: Any, options, timeout: float):
    """Sign a request the way its auth kind does; refuse one missing what the kind needs."""
    spec = AUTH_KINDS.get(auth.kind)
    if spec is None:
        raise LLMError(ErrorKind.CONFIG, f"Unknown auth kind {auth.kind!r}.")
    for name in spec.required:
        if not getattr(auth, name):
            what = FIELD_LABELS[name].lower()
            if name == spec.secret:
                raise LLMError(
                    ErrorKind.CONFIG, "The auth profile has no key: enter it in the profile."
                )
            raise LLMError(ErrorKind.CONFIG, f"The auth profile has no {what}.")
    return spec.apply(auth, url, headers, body, options, timeout)


def check_route(auth, headers, url: str, proxy_url: str) -> None:
    """Refuse to attach a secret to a request for a route it was not entered for.

    Every request that carries a secret is built through here (chat, stream, model
    list, OAuth token), so no form, API call or admin action can send a stored secret
    to a host, port or proxy its owner never typed it for.
    """
    try:
        where = inputs.route(url, proxy_url)
    except inputs.InputError as exc:
        raise LLMError(ErrorKind.INVALID_URL, str(exc)) from exc
    if auth.secrets() and where not in auth.bound:
        raise _origin_error("The auth profile's secret", auth.bound, where)
    for header in headers:
        if header.secret and header.value and where not in header.bound:
            raise _origin_error(f"The secret header {header.name}", header.bound, where)


def _origin_error(what: str, bound, where: str) -> LLMError:
    entered = ", ".join(sorted(bound)) or "no origin yet"
    return LLMError(
        ErrorKind.SECRET_ORIGIN,
        f"{what} was entered for {entered}, not {where}. Type it again to send it there.",
    )


def _oauth_cache_key(auth) -> str:
    material = "\n".join([auth.token_url, auth.client_id, auth.client_secret, auth.scope])
    return "oauth-token:" + hashlib.sha256(material.encode()).hexdigest()


def oauth_token(auth, options: transport.ClientOptions, timeout: float) -> str:
    """Return an access token for client credentials, cached (encrypted) until expiry."""
    key = _oauth_cache_key(auth)
    cached = cache.get(key)
    if cached:
        token = decrypt(cached)
        if isinstance(token, str):
            return token
    check_route(auth, (), auth.token_url, options.proxy_url)
    form = {"grant_type": "client_credentials", "client_id": auth.client_id}
    form["client_secret"] = auth.client_secret
    if auth.scope:
        form["scope"] = auth.scope
    raw = transport.send(
        "POST",
        auth.token_url,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        content=urlencode(form).encode(),
        timeout=timeout,
        options=options,
    )
    try:
        data = json.loads(raw.body)
    except (ValueError, RecursionError):
        data = None
    token = data.get("access_token") if isinstance(data, dict) else None
    if raw.status_code >= 400 or not isinstance(token, str) or not token:
        sc = scrubber(tuple(auth.secrets()))
        detail = sc.text(raw.body.decode("utf-8", "replace"))[:UPSTREAM_MESSAGE_LIMIT]
        raise LLMError(
            "auth",
            f"The OAuth token endpoint answered {raw.status_code} without an access token.",
            status=raw.status_code,
            upstream_message=detail,
        )
    if not token.isascii() or not token.isprintable():
        raise LLMError(ErrorKind.BAD_RESPONSE, "The OAuth token endpoint sent an unusable token.")
    ttl = token_ttl(data.get("expires_in"))
    if ttl:  # a token that lives under 30 s is used once, never cached
        cache.set(key, encrypt(token), ttl)
    return token


def token_ttl(expires_in: Any) -> int | None:
    """Return how long to keep a token: refreshed when 10% of its life, or 30 s, is left."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        return 3000
    if not 0 < expires_in < 10**8:
        return 3000 if expires_in >= 10**8 else 0
    margin = max(expires_in * 0.1, 30)
    return max(int(expires_in - margin), 0)


def forget_oauth_token(auth) -> None:
    cache.delete(_oauth_cache_key(auth))
