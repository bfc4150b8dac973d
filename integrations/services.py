"""From saved rows to the client: configurations, where their secrets may go, fingerprints.

Read-only: integrations.writes is the one place that changes configuration rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, replace

from django.conf import settings
from django.db.models import Prefetch

from integrations import callcache
from integrations.llm import inputs
from integrations.llm.chat import EmbeddingsInput
from integrations.llm.config import (
    AuthConfig,
    CallResult,
    Header,
    LLMConfig,
    Prompt,
    ResponsePaths,
)
from integrations.llm.errors import LLMError
from integrations.llm.protocols import adapter_for
from integrations.models import (
    AuthKind,
    AuthProfile,
    CustomModel,
    Integration,
    IntegrationHeader,
)
from integrations.secrets import CredentialUnreadable, reveal

TEST_SYSTEM = "You are a connection test. Answer briefly."
TEST_USER = "Reply with the single word: pong"
DEFAULT_TEST_PARAMETERS = {"max_tokens": 64}


def auth_config(profile: AuthProfile | None, stored_value: str | None = None) -> AuthConfig:
    """Return the plaintext auth settings; raise LLMError if a secret is unreadable.

    A profile that references a stored secret reads its value and binding on every call,
    so rotating the stored secret rotates every profile using it. `stored_value` stands
    in for the stored secret's value (a rotation being tested before it is saved).
    """
    if profile is None:
        return AuthConfig()
    name = profile.name
    try:
        values = {
            "token": reveal(profile.token, f"Auth profile {name!r}: token"),
            "password": reveal(profile.password, f"Auth profile {name!r}: password"),
            "client_secret": reveal(profile.client_secret, f"Auth profile {name!r}: client secret"),
        }
        bound = frozenset(profile.bound_origins or ())
        if profile.stored_secret_id:
            stored = profile.stored_secret
            field = AuthProfile.STORED_SECRET_FIELD.get(profile.kind, "token")
            values[field] = (
                stored_value
                if stored_value is not None
                else reveal(stored.value, f"Stored secret {stored.name!r}")
            )
            bound = frozenset(stored.bound_origins or ())
    except CredentialUnreadable as exc:
        raise LLMError("credential", str(exc)) from exc
    return AuthConfig(
        kind=profile.kind,
        header_name=profile.header_name,
        query_param=profile.query_param,
        body_path=profile.body_path,
        username=profile.username,
        token_url=profile.token_url,
        client_id=profile.client_id,
        scope=profile.scope,
        bound=bound,
        **values,
    )


def config_for(integration: Integration, model: CustomModel | None = None) -> LLMConfig:
    """Return the configuration the client sends for a saved integration (and model)."""
    try:
        headers = tuple(
            Header(
                h.name,
                reveal(h.value, f"Header {h.name!r}"),
                h.secret,
                frozenset(h.bound_origins or ()),
            )
            for h in integration.headers.all()
        )
        proxy_url = reveal(integration.proxy_url, "The proxy URL")
    except CredentialUnreadable as exc:
        raise LLMError("credential", str(exc)) from exc
    fields = {name: getattr(integration, name) for name in CONFIG_FIELDS} | {"proxy_url": proxy_url}
    config = integration_config(fields, auth_config(integration.auth_profile), headers)
    if model is None:
        return config
    return model_config(config, model_fields(model))


# A model's fields a call depends on.
MODEL_CALL_FIELDS = ("model_id", "kind", "max_tokens", "temperature", "request_template")


def model_fields(model: CustomModel) -> dict:
    return {name: getattr(model, name) for name in MODEL_CALL_FIELDS}


def model_config(base: LLMConfig, fields: dict) -> LLMConfig:
    """The configuration a model's calls send: its integration's, with the model's ID, kind,
    defaults and request body. The one place model fields meet a call, whether they come
    from a saved row, a form, the API or an import."""
    defaults = {k: fields.get(k) for k in ("max_tokens", "temperature")}
    template = fields.get("request_template")
    return replace(
        base,
        model_id=(fields.get("model_id") or "").strip(),
        kind=fields.get("kind") or "chat",
        default_params={k: v for k, v in defaults.items() if v is not None},
        request_template=template if template is not None else base.request_template,
    )


# The integration fields a call depends on (besides auth and headers).
CONFIG_FIELDS = (
    "endpoint", "protocol", "api_version", "deployment", "request_template", "content_path",
    "finish_reason_path", "prompt_tokens_path", "completion_tokens_path", "total_tokens_path",
    "tool_calls_path",
    "timeout_seconds", "verify_tls", "ca_bundle", "proxy_url",
)  # fmt: skip


def integration_config(fields: dict, auth: AuthConfig, headers: tuple) -> LLMConfig:
    """Return the configuration for integration field values (a saved row, a form, an API
    payload or an import): the one place that maps the fields onto what the client sends."""
    return LLMConfig(
        endpoint=fields["endpoint"],
        protocol=fields.get("protocol") or "openai-chat",
        auth=auth,
        headers=tuple(headers),
        api_version=fields.get("api_version") or "",
        deployment=fields.get("deployment") or "",
        request_template=fields.get("request_template"),
        response_paths=ResponsePaths(
            content=fields.get("content_path") or "",
            finish_reason=fields.get("finish_reason_path") or "",
            prompt_tokens=fields.get("prompt_tokens_path") or "",
            completion_tokens=fields.get("completion_tokens_path") or "",
            total_tokens=fields.get("total_tokens_path") or "",
            tool_calls=fields.get("tool_calls_path") or "",
        ),
        timeout=fields.get("timeout_seconds") or 60,
        verify_tls=fields.get("verify_tls", True),
        ca_bundle=fields.get("ca_bundle") or "",
        proxy_url=fields.get("proxy_url") or "",
    )


# --- where stored secrets may go ------------------------------------------------------------


def integration_routes(integration: Integration, token_url: str = "") -> set[str]:
    """Return the routes a saved integration's secrets travel (and a token URL's, if given)."""
    proxy = reveal_or_blank(integration.proxy_url)
    routes = set()
    for url in (integration.endpoint, token_url):
        if url:
            with contextlib.suppress(inputs.InputError):  # an unsaved, broken URL binds nothing
                routes.add(inputs.route(url, proxy))
    return routes


def reveal_or_blank(value) -> str:
    try:
        return reveal(value)
    except CredentialUnreadable:
        return ""


def profile_routes(profile: AuthProfile, token_url: str = "") -> set[str]:
    """Return the routes of every integration using a profile: where a new secret for it
    is being typed for. OAuth adds its token URL, through each integration's proxy."""
    token_url = token_url or (profile.token_url if profile.kind == AuthKind.OAUTH2 else "")
    routes: set[str] = set()
    integrations = list(profile.integrations.all()) if profile.pk else []
    for integration in integrations:
        routes |= integration_routes(integration, token_url)
    if not integrations and token_url:
        routes.add(inputs.route(token_url))
    return routes


def unbound(bound, routes: set[str], owner_id=None, user=None) -> set[str]:
    """Return the routes a stored secret was not entered for.

    A secret stored without any route (an API secret, a profile made on its own page)
    is bound by its first use, but only when the person who stored it makes that use.
    """
    missing = set(routes) - set(bound or ())
    first_use = not bound and owner_id is not None and owner_id == getattr(user, "pk", None)
    return set() if first_use else missing


def request_url(integration: Integration, model_id: str = "") -> str:
    """Return where this integration's requests go; needs no secret."""
    return adapter_for(integration.protocol).url(_url_config(integration, model_id))


def lists_models(integration: Integration) -> bool:
    """Whether the endpoint's protocol has a model list to fetch."""
    return adapter_for(integration.protocol).models_url(_url_config(integration)) is not None


def _url_config(integration: Integration, model_id: str = "") -> LLMConfig:
    return LLMConfig(
        endpoint=integration.endpoint,
        protocol=integration.protocol,
        model_id=model_id,
        api_version=integration.api_version,
        deployment=integration.deployment,
    )


def test_prompt(params: dict | None, kind: str = "chat") -> Prompt | EmbeddingsInput:
    """The Test button's prompt: the model's test parameters, and its test message
    ("prompt" among them, when the person set one; "pong" is only the default). An
    embeddings model is asked to embed the message."""
    params = dict(params or DEFAULT_TEST_PARAMETERS)
    user = params.pop("prompt", "") or TEST_USER
    user = user if isinstance(user, str) else TEST_USER
    if kind == "embeddings":
        return EmbeddingsInput((user,))
    return Prompt.of(TEST_SYSTEM, user, params)


def fingerprint(config: LLMConfig, test_params: dict | None) -> str:
    """Return the hash of what a test proves: the call configuration and the test parameters."""
    material = config.fingerprint(settings.SECRET_KEY) + json.dumps(
        test_params or DEFAULT_TEST_PARAMETERS, sort_keys=True
    )
    return hashlib.sha256(material.encode()).hexdigest()


# --- what a call needs -------------------------------------------------------------


def usable_models():
    """Enabled models of enabled integrations, with all a call needs in two queries."""
    return (
        CustomModel.objects.filter(enabled=True, integration__enabled=True)
        .select_related("integration__auth_profile__stored_secret")
        .prefetch_related(
            Prefetch("integration__headers", queryset=IntegrationHeader.objects.order_by("id"))
        )
        .order_by("integration__name", "name")
    )


@dataclass
class Target:
    """A model ready to call: its config, or the error that stops the call (a bad secret)."""

    model: CustomModel
    config: LLMConfig | None = None
    failed: CallResult | None = None


def target(model_pk) -> Target | None:
    """Return an enabled model ready to call, or None if there is none by that id."""
    cached = callcache.get(model_pk)
    if cached is not None:
        return Target(*cached)
    if callcache.enabled():
        with callcache.single_flight(("model", str(model_pk))):
            cached = callcache.get(model_pk)
            return Target(*cached) if cached is not None else _load_target(model_pk)
    return _load_target(model_pk)


def _load_target(model_pk) -> Target | None:
    at_generation = callcache.generation() if callcache.enabled() else ""  # read before loading
    model = usable_models().filter(pk=model_pk).first()
    if model is None:
        return None
    try:
        config = config_for(model.integration, model)
    except LLMError as exc:
        return Target(model, failed=CallResult(ok=False, error=exc))
    callcache.put(model, config, at_generation)
    return Target(model, config)
