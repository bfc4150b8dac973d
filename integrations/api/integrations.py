"""/api/v2/integrations: the whole data model over REST, and LiveAvatar's shape.

An integration (endpoint, protocol, auth of any kind, extra headers, TLS, proxy,
timeout) with one or more models (ID, defaults, prices). Every write goes through
integrations.writes: each new model and each changed configuration is tested first,
and a change that reaches other models tests them too (409 with the ones that fail).
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

from django.db import transaction
from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError

from integrations import names, receipts, services, writes
from integrations.api.common import (
    _edge,
    _refused,
    _secret_value,
    _unique_profile_name,
    require_editor,
    saved_config,
)
from integrations.llm import inputs
from integrations.llm.auth import AUTH_KINDS
from integrations.llm.config import AuthConfig, Header, LLMConfig
from integrations.llm.errors import LLMError
from integrations.llm.protocols import ADAPTERS, adapter_for
from integrations.llm.wires import template as templates
from integrations.models import (
    AuthKind,
    AuthProfile,
    CustomModel,
    Integration,
)
from integrations.schemas import Input
from integrations.secrets import mask

router = Router(tags=["integrations"])
SECRET_ATTRS = ("token", "password", "client_secret")


AuthKinds = Literal[tuple(AUTH_KINDS)]  # type: ignore[valid-type]


class AuthSpec(Input):
    """How to authenticate: an existing profile, a stored secret, or typed fields."""

    type: AuthKinds | None = None  # type: ignore[valid-type]
    profile_id: uuid.UUID | None = None
    secret_id: uuid.UUID | None = None
    name: str = Field("", max_length=100, description="Name for a new profile")
    token: str | None = None
    header: str = Field("", max_length=100)
    query_param: str = Field("", max_length=100)
    body_path: str = Field("", max_length=200)
    username: str = Field("", max_length=200)
    password: str | None = None
    token_url: str = Field("", max_length=2000)
    client_id: str = Field("", max_length=300)
    client_secret: str | None = None
    scope: str = Field("", max_length=500)


class HeaderIn(Input):
    name: str = Field(min_length=1, max_length=200)
    value: str | None = Field(None, description="null on a secret row keeps the stored value")
    secret: bool = False


class ModelIn(Input):
    name: str = Field(min_length=1, max_length=100)
    model_id: str = Field(min_length=1, max_length=200)
    kind: Literal["chat", "embeddings"] = "chat"
    description: str = ""
    max_tokens: int | None = Field(None, ge=1, le=inputs.MAX_INT)
    temperature: float | None = Field(None, ge=0, le=2)
    test_model_parameters: dict[str, Any] = Field(default_factory=dict)
    request_template: dict[str, Any] | None = None
    price_input_per_mtok: Decimal | None = Field(None, ge=0, max_digits=12, decimal_places=6)
    price_output_per_mtok: Decimal | None = Field(None, ge=0, max_digits=12, decimal_places=6)
    context_window: int | None = Field(None, ge=1, le=inputs.MAX_INT)


Protocols = Literal[tuple(ADAPTERS)]  # type: ignore[valid-type]


class IntegrationFields(Input):
    description: str | None = None
    endpoint: str | None = Field(None, max_length=2000)
    protocol: Protocols | None = None  # type: ignore[valid-type]
    api_version: str | None = Field(None, max_length=40)
    deployment: str | None = Field(None, max_length=200)
    auth: AuthSpec | None = None
    headers: list[HeaderIn] | None = Field(None, max_length=30)
    timeout_seconds: float | None = Field(None, ge=1, le=600)
    verify_tls: bool | None = None
    ca_bundle: str | None = Field(None, max_length=100_000)
    proxy_url: str | None = Field(None, max_length=2000)
    request_template: dict[str, Any] | None = None
    content_path: str | None = Field(None, max_length=200)
    finish_reason_path: str | None = Field(None, max_length=200)
    prompt_tokens_path: str | None = Field(None, max_length=200)
    completion_tokens_path: str | None = Field(None, max_length=200)
    total_tokens_path: str | None = Field(None, max_length=200)
    tool_calls_path: str | None = Field(None, max_length=200)


class IntegrationIn(IntegrationFields):
    name: str = Field(min_length=1, max_length=100)
    endpoint: str = Field(min_length=1, max_length=2000)
    models: list[ModelIn] = Field(min_length=1, max_length=20)


class IntegrationPatch(IntegrationFields):
    name: str | None = Field(None, min_length=1, max_length=100)
    test_model_id: uuid.UUID | None = Field(None, description="Test with this model")


class IntegrationOut(Schema):
    id: str
    name: str
    description: str
    endpoint: str
    protocol: str
    enabled: bool
    auth: dict
    headers: list[dict]
    timeout_seconds: float
    verify_tls: bool
    proxy_url: str
    models: list[dict]


class LiveAvatarIn(Input):
    display_name: str = Field(min_length=1, max_length=100)
    model_name: str = Field(min_length=1, max_length=200)
    secret_id: uuid.UUID
    base_url: str = Field("https://api.openai.com/v1", min_length=1, max_length=2000)


# --- building a configuration from a payload --------------------------------------------------


def _auth(spec: AuthSpec | None, current: AuthProfile | None, request, routes: set[str]):
    """Return (auth, profile to use, name of a profile to create, stored secret used)."""
    if spec is None:
        try:
            auth = services.auth_config(current)
        except LLMError as exc:
            raise HttpError(409, exc.message) from exc
        return auth, current, "", None
    if spec.profile_id is not None:
        profile = get_object_or_404(AuthProfile, pk=spec.profile_id)
        auth = services.auth_config(profile)
        if services.unbound(auth.bound, routes, profile.created_by_id, request.user):
            typed = [getattr(spec, a) for a in SECRET_ATTRS if getattr(spec, a)]
            stored = auth.secrets()
            if not any(hmac.compare_digest(t.encode(), s.encode()) for t in typed for s in stored):
                raise HttpError(
                    409,
                    f"The secret of profile {profile.name!r} was entered for another origin: "
                    "send it again in this auth object (token, password or client_secret) "
                    "to use it here.",
                )
        return auth.bound_to(*routes), profile, "", None
    kind = spec.type or AuthKind.NONE
    if kind == AuthKind.NONE:
        return AuthConfig(), None, "", None
    stored = None
    values = {a: getattr(spec, a) or "" for a in SECRET_ATTRS}
    if spec.secret_id is not None:
        values[AUTH_KINDS[kind].secret], stored = _secret_value(spec.secret_id, None, "auth")
    auth = AuthConfig(
        kind=kind,
        header_name=_edge(inputs.check_header_name, spec.header, field="auth.header")
        if spec.header
        else "",
        query_param=spec.query_param,
        body_path=spec.body_path,
        username=spec.username,
        token_url=spec.token_url,
        client_id=spec.client_id,
        scope=spec.scope,
        **values,
    ).effective()
    for required in AUTH_KINDS[kind].required:
        if not getattr(auth, required):
            raise HttpError(422, f"Invalid request: auth.{required}: required for {kind} auth.")
    if kind in (AuthKind.BEARER, AuthKind.HEADER):
        _edge(inputs.check_header_value, auth.token, field="auth.token")
    if auth.token_url:
        _edge(inputs.parse_url, auth.token_url, "token URL", field="auth.token_url")
    if stored is not None:
        bound = frozenset(stored.bound_origins or ())
        auth = replace(auth, bound=bound)
        if not services.unbound(bound, routes, stored.created_by_id, request.user):
            auth = auth.bound_to(*routes)
        return auth, None, spec.name or "", stored
    return auth.bound_to(*routes), None, spec.name or "", None


def _headers(rows: list[HeaderIn] | None, integration: Integration | None, route: str):
    """Return the header rows; a secret row sent with value null keeps the stored value."""
    if rows is None:
        return saved_config(integration, replacing_auth=True).headers if integration else ()
    stored = {h.name: h for h in integration.headers.all()} if integration else {}
    headers = []
    for row in rows:
        name = _edge(inputs.check_header_name, row.name, field="headers.name")
        old = stored.get(name)
        if row.value is None and row.secret and old is not None and old.secret:
            value = services.reveal_or_blank(old.value)
            headers.append(Header(name, value, True, frozenset(old.bound_origins or ())))
            continue
        value = _edge(inputs.check_header_value, row.value or "", field="headers.value")
        headers.append(Header(name, value, row.secret, frozenset({route}) if row.secret else ()))
    if len({h.name.lower() for h in headers}) != len(headers):
        raise HttpError(422, "Invalid request: headers: a header is listed twice.")
    return tuple(headers)


INTEGRATION_ATTRS = (
    "description", "api_version", "deployment", "timeout_seconds", "verify_tls", "ca_bundle",
    "request_template", "content_path", "finish_reason_path", "prompt_tokens_path",
    "completion_tokens_path", "total_tokens_path", "tool_calls_path",
)  # fmt: skip


def _integration_change(payload: IntegrationFields, integration: Integration | None, request):
    """Return (base config, integration fields, profile, new profile name, stored secret)."""
    sent = payload.model_fields_set
    fields: dict[str, Any] = {
        a: getattr(payload, a)
        for a in INTEGRATION_ATTRS
        if a in sent and getattr(payload, a) is not None
    }
    protocol = payload.protocol or (integration.protocol if integration else "openai-chat")
    endpoint = integration.endpoint if integration else ""
    if payload.endpoint is not None:
        _edge(inputs.parse_url, payload.endpoint, "endpoint", field="endpoint")
        endpoint, _ = adapter_for(protocol).normalize(payload.endpoint)
        _edge(inputs.parse_url, endpoint, "endpoint", field="endpoint")
    proxy = services.reveal_or_blank(integration.proxy_url) if integration else ""
    if payload.proxy_url is not None:
        proxy = payload.proxy_url.strip()
        if proxy:
            _edge(inputs.parse_url, proxy, "proxy URL", True, field="proxy_url")
    if payload.request_template is not None:
        _edge(inputs.check_json, payload.request_template, "The body", field="request_template")
        _conversation(payload.request_template, "request_template")
    if payload.ca_bundle:
        fields["ca_bundle"] = _edge(inputs.check_ca_bundle, payload.ca_bundle, field="ca_bundle")
    route = _edge(inputs.route, endpoint, proxy, field="endpoint")
    routes = {route}
    if payload.auth is not None and payload.auth.token_url:
        routes.add(_edge(inputs.route, payload.auth.token_url, proxy, field="auth.token_url"))
    auth, profile, new_name, stored = _auth(
        payload.auth, integration.auth_profile if integration else None, request, routes
    )
    headers = _headers(payload.headers, integration, route)
    merged = {
        "endpoint": endpoint,
        "protocol": protocol,
        "proxy_url": proxy,
        **{a: getattr(integration, a) for a in INTEGRATION_ATTRS if integration},
        **fields,
    }
    if payload.name is not None:
        merged["name"] = payload.name.strip()
    config = services.integration_config(merged, auth, headers)
    if auth.kind != AuthKind.NONE and profile is None and not new_name:
        new_name = _unique_profile_name(merged.get("name") or integration.name)
    return config, merged, profile, new_name, stored


def _conversation(template, field: str, kind: str = "chat") -> None:
    """A request body that carries no part of the conversation (or, for an embeddings
    model, no input) is refused (422)."""
    if problem := templates.conversation_problem(template, kind):
        raise HttpError(422, f"Invalid request: {field}: {problem}")


def _model_change(model_in: ModelIn, base: LLMConfig, integration, subject: str):
    if model_in.request_template is not None:
        _conversation(model_in.request_template, "models.request_template", model_in.kind)
    config = services.model_config(
        base, model_in.model_dump(include=set(services.MODEL_CALL_FIELDS))
    )
    params = model_in.test_model_parameters or dict(services.DEFAULT_TEST_PARAMETERS)
    return writes.ConnectionChange(
        config=config,
        test_params=params,
        integration=integration,
        subject=subject,
        model_fields={
            "name": model_in.name.strip(),
            "model_id": model_in.model_id.strip(),
            "kind": model_in.kind,
            "description": model_in.description,
            "max_tokens": model_in.max_tokens,
            "temperature": model_in.temperature,
            "test_model_parameters": params,
            "request_template": model_in.request_template,
            "price_input_per_mtok": model_in.price_input_per_mtok,
            "price_output_per_mtok": model_in.price_output_per_mtok,
            "context_window": model_in.context_window,
        },
    )


def _out(integration: Integration) -> dict:
    profile = integration.auth_profile
    auth = {"type": "none"}
    if profile is not None:
        auth = {
            "type": profile.kind,
            "profile_id": str(profile.pk),
            "profile": profile.name,
            "secret": profile.masked_secret,
        }
    return {
        "id": str(integration.pk),
        "name": integration.name,
        "description": integration.description,
        "endpoint": integration.endpoint,
        "protocol": integration.protocol,
        "enabled": integration.enabled,
        "auth": auth,
        "headers": [
            {"name": h.name, "secret": h.secret, "value": mask(h.value) if h.secret else h.value}
            for h in integration.headers.all()
        ],
        "timeout_seconds": integration.timeout_seconds,
        "verify_tls": integration.verify_tls,
        "proxy_url": inputs.without_credentials(services.reveal_or_blank(integration.proxy_url)),
        "models": [
            {
                "id": str(m.pk),
                "name": m.name,
                "model_id": m.model_id,
                "kind": m.kind,
                "enabled": m.enabled,
                "status": m.last_test_status,
            }
            for m in integration.models.order_by("name")
        ],
    }


def _integrations():
    return Integration.objects.select_related("auth_profile__stored_secret").prefetch_related(
        "headers", "models"
    )


# --- operations -------------------------------------------------------------------------------------


@router.post(
    "integrations",
    response={201: IntegrationOut},
    summary="Create an integration with its models (each tested first)",
)
def create_integration(request, payload: IntegrationIn):
    require_editor(request)
    name = payload.name.strip()
    if problem := names.taken(Integration, name):
        raise HttpError(409, problem)
    model_names = [m.name.strip().lower() for m in payload.models]
    if len(set(model_names)) != len(model_names):
        raise HttpError(422, "Invalid request: models: two models share a name.")
    base, fields, profile, new_name, stored = _integration_change(payload, None, request)
    changes = [_model_change(m, base, None, f"{name} / {m.name}") for m in payload.models]
    changes[0].integration_fields = fields
    changes[0].profile, changes[0].new_profile_name = profile, new_name
    changes[0].stored_secret = stored
    # Every model is tested before anything is written; then each is saved with its receipt.
    proofs = []
    for change in changes:
        result, _ = writes.test_config(
            change.config, change.test_params, None, None, request, change.subject
        )
        if not result.ok:
            raise _refused(
                writes.Refused(f"{change.subject}: {result.error.message}", result.error)
            )
        proofs.append(receipts.issue(change.fingerprint(), request.user))
    try:
        with transaction.atomic():
            integration = None
            for change, proof in zip(changes, proofs, strict=True):
                change.integration = integration
                integration = writes.save_connection(
                    change, request=request, proof=proof
                ).integration
            if stored is not None:
                writes.bind(stored, base.auth.bound)
    except writes.Refused as exc:
        raise _refused(exc) from exc
    return Status(201, _out(get_object_or_404(_integrations(), pk=integration.pk)))


@router.get("integrations", response=list[IntegrationOut], summary="List integrations")
def list_integrations(request):
    return [_out(i) for i in _integrations().order_by("name")]


@router.get("integrations/{integration_id}", response=IntegrationOut, summary="Get an integration")
def get_integration(request, integration_id: uuid.UUID):
    return _out(get_object_or_404(_integrations(), pk=integration_id))


@router.patch(
    "integrations/{integration_id}",
    response=IntegrationOut,
    summary="Change an integration (tested with each enabled model it reaches)",
)
def patch_integration(request, integration_id: uuid.UUID, payload: IntegrationPatch):
    require_editor(request)
    integration = get_object_or_404(_integrations(), pk=integration_id)
    models = integration.models.order_by("-enabled", "name")
    test_model = (
        get_object_or_404(models, pk=payload.test_model_id)
        if payload.test_model_id
        else models.first()
    )
    if test_model is None:
        raise HttpError(409, "This integration has no model to test a change with.")
    base, fields, profile, new_name, stored = _integration_change(payload, integration, request)
    config = services.model_config(base, services.model_fields(test_model))
    change = writes.ConnectionChange(
        config=config,
        test_params=test_model.test_model_parameters or dict(services.DEFAULT_TEST_PARAMETERS),
        integration=integration,
        test_model=test_model,
        subject=str(test_model),
        integration_fields=fields,
        profile=profile,
        new_profile_name=new_name,
        stored_secret=stored,
        header_ids={h.name: h.pk for h in integration.headers.all()},
    )
    unchanged = change.fingerprint() == writes.saved_fingerprint(test_model)
    try:
        writes.save_connection(
            change, request=request, proof=None if unchanged else writes.RUN_TEST
        )
    except writes.Refused as exc:
        raise _refused(exc) from exc
    if stored is not None:
        writes.bind(stored, config.auth.bound)
    return _out(get_object_or_404(_integrations(), pk=integration_id))


@router.post(
    "integrations/{integration_id}/models",
    response={201: dict},
    summary="Add a model to an integration (tested first)",
)
def add_model(request, integration_id: uuid.UUID, payload: ModelIn):
    require_editor(request)
    integration = get_object_or_404(_integrations(), pk=integration_id)
    if problem := names.taken(CustomModel, payload.name, integration=integration):
        raise HttpError(409, problem)
    base = saved_config(integration)
    change = _model_change(payload, base, integration, f"{integration.name} / {payload.name}")
    try:
        saved = writes.save_connection(change, request=request, proof=writes.RUN_TEST)
    except writes.Refused as exc:
        raise _refused(exc) from exc
    model = saved.model
    return Status(201, {"id": str(model.pk), "name": model.name, "enabled": model.enabled})


@router.delete("integrations/{integration_id}", response={204: None}, summary="Delete one")
def delete_integration(request, integration_id: uuid.UUID):
    require_editor(request)
    writes.delete_integration(get_object_or_404(Integration, pk=integration_id), request)
    return Status(204, None)


def _provider_root(base_url: str) -> str:
    """LiveAvatar's base_url names a provider's host (its default is
    https://api.openai.com): one without a path means the standard root, /v1."""
    try:
        parts = urlsplit(base_url.strip())
    except ValueError:
        return base_url  # the endpoint's own check says what is wrong
    if parts.scheme in ("http", "https") and parts.netloc and parts.path in ("", "/"):
        return f"{parts.scheme}://{parts.netloc}/v1"
    return base_url


@router.post(
    "llm_configurations",
    response={201: dict},
    summary="LiveAvatar's shape: a model on an OpenAI-compatible base URL, keyed by secret_id",
)
def create_llm_configuration(request, payload: LiveAvatarIn):
    require_editor(request)
    spec = IntegrationIn(
        name=payload.display_name,
        endpoint=_provider_root(payload.base_url),
        auth=AuthSpec(type="bearer", secret_id=payload.secret_id),
        models=[ModelIn(name=payload.display_name, model_id=payload.model_name)],
    )
    integration = create_integration(request, spec).value
    model = integration["models"][0]
    return Status(
        201,
        {
            "llm_configuration_id": model["id"],
            "display_name": payload.display_name,
            "model_name": payload.model_name,
            "base_url": integration["endpoint"],
            "enabled": model["enabled"],
        },
    )
