"""The plain configuration the client works from, independent of Django rows.

The Test button builds it from a form, the Sandbox and the API from saved rows;
either way the same `LLMConfig` goes to the same `call()`. Secrets here are
plaintext in memory only; nothing in this module renders or stores them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit

from integrations.llm import inputs
from integrations.llm.auth import AUTH_KINDS
from integrations.llm.chat import Finish, Message, Prompt, Usage

__all__ = ["Prompt", "Usage"]  # the conversation lives in integrations.llm.chat


@dataclass(frozen=True)
class AuthConfig:
    kind: str = "none"
    token: str = ""
    header_name: str = ""
    query_param: str = ""
    body_path: str = ""
    username: str = ""
    password: str = ""
    token_url: str = ""
    client_id: str = ""
    client_secret: str = ""
    scope: str = ""
    # The routes (see inputs.route) the secrets were entered for; the client refuses others.
    bound: frozenset[str] = frozenset()

    def secrets(self) -> list[str]:
        return [s for s in (self.token, self.password, self.client_secret) if s]

    # What each kind of authentication uses, from the registry.
    USES = {key: spec.fields for key, spec in AUTH_KINDS.items()}

    def effective(self) -> AuthConfig:
        """Return only what this kind of authentication uses; leftovers of other kinds drop."""
        used = self.USES.get(self.kind, ())
        return AuthConfig(kind=self.kind, **{name: getattr(self, name) for name in used})

    def bound_to(self, *routes: str) -> AuthConfig:
        """Return a copy whose secrets may also go to these routes (they were typed for them)."""
        return replace(self, bound=self.bound | {r for r in routes if r})


@dataclass(frozen=True)
class Header:
    name: str
    value: str
    secret: bool = False
    bound: frozenset[str] = frozenset()  # for a secret value: the routes it was entered for


@dataclass(frozen=True)
class ResponsePaths:
    content: str = ""
    finish_reason: str = ""
    prompt_tokens: str = ""
    completion_tokens: str = ""
    total_tokens: str = ""
    tool_calls: str = ""  # to an OpenAI-shaped list of tool calls


@dataclass(frozen=True)
class LLMConfig:
    endpoint: str
    protocol: str = "openai-chat"
    model_id: str = ""
    auth: AuthConfig = field(default_factory=AuthConfig)
    headers: tuple[Header, ...] = ()
    api_version: str = ""
    deployment: str = ""
    request_template: Any = None
    response_paths: ResponsePaths = field(default_factory=ResponsePaths)
    default_params: dict = field(default_factory=dict)
    timeout: float = 60.0
    verify_tls: bool = True
    ca_bundle: str = ""
    proxy_url: str = ""
    kind: str = "chat"  # chat | embeddings: what the model answers, and so its URL and body

    def secrets(self) -> list[str]:
        """Return every secret value this configuration may send: the auth's, the secret
        headers', and the proxy's credentials (sent as Proxy-Authorization: Basic)."""
        values = self.auth.secrets() + [h.value for h in self.headers if h.secret and h.value]
        values += proxy_credentials(self.proxy_url)
        # Longest first so that a secret containing another is scrubbed whole.
        return sorted(set(values), key=len, reverse=True)

    def route(self) -> str:
        """Return where requests go: the endpoint's origin, through the proxy if any."""
        return inputs.route(self.endpoint, self.proxy_url)

    def auth_routes(self) -> set[str]:
        """Return every route the auth secrets travel: the endpoint, and OAuth's token URL."""
        routes = {self.route()}
        if self.auth.kind == "oauth2" and self.auth.token_url:
            routes.add(inputs.route(self.auth.token_url, self.proxy_url))
        return routes

    def fingerprint(self, key: str) -> str:
        """Return a hash of the normalized configuration, secrets included by HMAC only."""

        def digest(value: str) -> str:
            return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()[:16]

        data = asdict(self)
        # Bindings say where a secret may go, not what is sent: the route is in the endpoint.
        data["auth"].pop("bound")
        if data["kind"] == "chat":  # as before kinds existed: saved proofs stay valid
            data.pop("kind")
        for name in ("token", "password", "client_secret"):
            data["auth"][name] = digest(data["auth"][name]) if data["auth"][name] else ""
        data["headers"] = sorted(
            [h["name"].lower(), digest(h["value"]) if h["secret"] else h["value"], h["secret"]]
            for h in data["headers"]
        )
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Forward:
    """A caller's body in the upstream's own format, sent as it is (the gateway does this
    when the door and the upstream speak one format), with the protocol headers the
    caller chose (anthropic-version, anthropic-beta) and a path under the protocol's own
    (`/count_tokens`)."""

    body: dict
    headers: dict = field(default_factory=dict)
    path: str = ""


def proxy_credentials(proxy_url: str) -> list[str]:
    """The secrets a proxy URL carries: its password, and user:password as Basic sends it."""
    try:
        parts = urlsplit(proxy_url) if proxy_url else None
        user, password = (parts.username or "", parts.password or "") if parts else ("", "")
    except ValueError:
        return []
    if not password:
        return []
    user, password = unquote(user), unquote(password)
    return [password, f"{user}:{password}"]


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters a token), only ever shown labelled as an estimate."""
    return max(1, round(len(text) / 4)) if text else 0


def counted(usage: Usage, prompt_text: str, reply: str) -> tuple[int, int, bool]:
    """Prompt and completion tokens as reported, each estimated where the endpoint sent
    none (a stopped stream, a server without usage); the flag says an estimate is in."""
    prompt, completion = usage.prompt_tokens, usage.completion_tokens
    estimated = prompt is None or completion is None
    if prompt is None:
        prompt = estimate_tokens(prompt_text)
    if completion is None:
        completion = estimate_tokens(reply)
    return prompt, completion, estimated


@dataclass
class CallResult:
    """What happened to one call. `message` is the whole answer (text, tool calls,
    thinking), `content` its text; `finish` the unified finish reason with the raw one
    (None when a stream ended without one), and `finish_reason` the unified reason."""

    ok: bool
    content: str = ""
    finish_reason: str = ""
    usage: Usage = field(default_factory=Usage)
    latency_ms: int = 0
    status_code: int | None = None
    request: dict = field(default_factory=dict)  # redacted: method, url, headers, body
    raw: str = ""  # the response body, capped and scrubbed
    raw_json: Any = None
    error: Any = None  # LLMError when not ok
    ttft_ms: int | None = None  # time to first token, when streamed
    streamed: bool = False
    message: Message | None = None
    finish: Finish | None = None
    usage_estimated: bool = False  # set by whoever fills in counts the upstream did not report
    vectors: Any = None  # an embeddings answer (integrations.llm.chat.Vectors)
    remaining: tuple | None = None  # (requests, tokens) left in the upstream's window
    response_id: str = ""  # the upstream's id for its answer, and the model it names
    response_model: str = ""
