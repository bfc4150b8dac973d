"""/api/v2/llms: Vectara's Create LLM shape; a change is tested before it is written."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any, Literal

from django.db import IntegrityError
from django.db.models import Q
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema, Status
from ninja.errors import HttpError

from integrations import names, services, writes
from integrations.api.common import (
    _edge,
    _endpoint,
    _refused,
    _secret_value,
    _unique_profile_name,
    require_editor,
    saved_config,
    usage_dict,
)
from integrations.llm import inputs
from integrations.llm.config import AuthConfig, LLMConfig
from integrations.models import (
    AuthKind,
    CustomModel,
    Integration,
    StoredSecret,
)
from integrations.schemas import Input

router = Router(tags=["llms"])
MAX_LIMIT = 200


class BearerAuthIn(Input):
    type: Literal["bearer"]
    token: str | None = Field(None, min_length=1)
    secret_id: uuid.UUID | None = None


class HeaderAuthIn(Input):
    type: Literal["header"]
    header: str = Field(min_length=1, max_length=100)
    value: str | None = Field(None, min_length=1)
    secret_id: uuid.UUID | None = None


AuthIn = Annotated[BearerAuthIn | HeaderAuthIn, Field(discriminator="type")]


class LLMCreate(Input):
    type: Literal["openai-compatible"]
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    model: str = Field(min_length=1, max_length=200)
    uri: str = Field(min_length=1, max_length=2000)
    auth: AuthIn | None = None
    test_model_parameters: dict[str, Any] = Field(default_factory=dict)


class LLMPatch(Input):
    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = None
    enabled: bool | None = None
    model: str | None = Field(None, min_length=1, max_length=200)
    uri: str | None = Field(None, min_length=1, max_length=2000)
    auth: AuthIn | None = None
    test_model_parameters: dict[str, Any] | None = None


class LLMOut(Schema):
    id: str
    name: str
    description: str
    enabled: bool


class LLMDetail(LLMOut):
    model: str
    uri: str
    protocol: str
    integration: str
    status: str
    last_tested_at: datetime | None
    latency_ms: int | None
    auth: dict
    test_model_parameters: dict


class ListMetadata(Schema):
    total: int
    limit: int
    offset: int
    next_offset: int | None


class LLMList(Schema):
    llms: list[LLMDetail]
    metadata: ListMetadata


class TestOut(Schema):
    ok: bool
    status_code: int | None
    latency_ms: int
    reply: str
    finish_reason: str
    usage: dict
    error: dict | None


def _auth_config(
    auth: BearerAuthIn | HeaderAuthIn | None, request, routes: set[str]
) -> tuple[AuthConfig, StoredSecret | None]:
    """Return the auth a payload asks for, bound to `routes` only if it was typed in it
    (or is a stored secret's first use by the person who stored it)."""
    if auth is None:
        return AuthConfig(), None
    if auth.type == "bearer":
        value, stored = _secret_value(auth.secret_id, auth.token, "auth.token")
        config = AuthConfig(kind=AuthKind.BEARER, token=value)
        _edge(inputs.check_header_value, value, field="auth.token")
    else:
        value, stored = _secret_value(auth.secret_id, auth.value, "auth.value")
        header = _edge(inputs.check_header_name, auth.header, field="auth.header")
        _edge(inputs.check_header_value, value, field="auth.value")
        config = AuthConfig(kind=AuthKind.HEADER, header_name=header, token=value)
    if stored is None:
        return config.bound_to(*routes), None
    config = replace(config, bound=frozenset(stored.bound_origins or ()))
    if not services.unbound(config.bound, routes, stored.created_by_id, request.user):
        config = config.bound_to(*routes)
    return config, stored


def _detail(model: CustomModel) -> dict:
    integration = model.integration
    profile = integration.auth_profile
    auth = {"type": "none"}
    if profile is not None:
        auth = {
            "type": profile.kind,
            "profile": profile.name,
            "secret": profile.masked_secret,
        }
        if profile.header_name:
            auth["header"] = profile.header_name
    return {
        "id": str(model.pk),
        "name": model.name,
        "description": model.description,
        "enabled": model.enabled and integration.enabled,
        "model": model.model_id,
        "uri": services.request_url(integration, model.model_id),
        "protocol": integration.protocol,
        "integration": integration.name,
        "status": model.last_test_status,
        "last_tested_at": model.last_tested_at,
        "latency_ms": model.last_test_latency_ms,
        "auth": auth,
        "test_model_parameters": model.test_model_parameters or {},
    }


def _models():
    return CustomModel.objects.select_related("integration__auth_profile__stored_secret").order_by(
        "integration__name", "name"
    )


# --- /llms -------------------------------------------------------------------------------------


@router.post("llms", response={201: LLMOut}, summary="Create an LLM (tested first)")
def create_llm(request, payload: LLMCreate):
    require_editor(request)
    name = payload.name.strip()
    if problem := names.taken(Integration, name):
        raise HttpError(409, problem)
    endpoint = _endpoint(payload.uri)
    auth, stored = _auth_config(payload.auth, request, {inputs.route(endpoint)})
    config = LLMConfig(endpoint=endpoint, model_id=payload.model.strip(), auth=auth)
    params = payload.test_model_parameters or dict(services.DEFAULT_TEST_PARAMETERS)
    change = writes.ConnectionChange(
        config=config,
        test_params=params,
        subject=f"{name} / {name}",
        integration_fields={"name": name, "description": payload.description, "endpoint": endpoint},
        new_profile_name=_unique_profile_name(name) if auth.kind != AuthKind.NONE else "",
        stored_secret=stored,
        model_fields={
            "name": name,
            "model_id": config.model_id,
            "description": payload.description,
            "test_model_parameters": params,
        },
    )
    try:
        saved = writes.save_connection(change, request=request, proof=writes.RUN_TEST)
    except writes.Refused as exc:
        raise _refused(exc) from exc
    except IntegrityError as exc:
        raise HttpError(409, f"An LLM named {name!r} was created meanwhile.") from exc
    if stored is not None:
        writes.bind(stored, config.auth.bound)
    model = saved.model
    return Status(
        201,
        {
            "id": str(model.pk),
            "name": model.name,
            "description": model.description,
            "enabled": True,
        },
    )


@router.get("llms", response=LLMList, summary="List LLMs")
def list_llms(
    request,
    limit: int = 50,
    offset: int = Query(0, ge=0, le=inputs.MAX_INT),
    enabled: bool | None = None,
    q: str = Query("", max_length=200),
    integration: str = Query("", max_length=100),
):
    limit = max(1, min(limit, MAX_LIMIT))
    q = _edge(inputs.clean_text, q, "The search", field="q")
    integration = _edge(inputs.clean_text, integration, "The integration", field="integration")
    models = _models()
    if q:
        models = models.filter(
            Q(name__icontains=q) | Q(model_id__icontains=q) | Q(integration__name__icontains=q)
        )
    if integration:
        models = models.filter(integration__name=integration)
    if enabled is True:
        models = models.filter(enabled=True, integration__enabled=True)
    elif enabled is False:
        models = models.filter(Q(enabled=False) | Q(integration__enabled=False))
    total = models.count()
    page = [_detail(m) for m in models[offset : offset + limit]]
    next_offset = offset + limit if offset + limit < total else None
    return {
        "llms": page,
        "metadata": {"total": total, "limit": limit, "offset": offset, "next_offset": next_offset},
    }


@router.get("llms/{llm_id}", response=LLMDetail, summary="Get an LLM")
def get_llm(request, llm_id: uuid.UUID):
    return _detail(get_object_or_404(_models(), pk=llm_id))


@router.patch(
    "llms/{llm_id}",
    response=LLMDetail,
    summary="Change an LLM (a changed configuration is tested first)",
)
def patch_llm(request, llm_id: uuid.UUID, payload: LLMPatch):
    require_editor(request)
    model = get_object_or_404(_models(), pk=llm_id)
    integration = model.integration
    config_changes = {"model", "uri", "auth", "test_model_parameters"} & payload.model_fields_set
    if config_changes:
        _patch_configuration(request, model, payload)
        model = get_object_or_404(_models(), pk=llm_id)
    info = {}
    if payload.name is not None and payload.name.strip() != model.name:
        new = payload.name.strip()
        if problem := names.taken(CustomModel, new, exclude=model, integration=integration):
            raise HttpError(409, problem)
        info["name"] = new
    if payload.description is not None:
        info["description"] = payload.description
    writes.update_info(model, request, **info)
    if payload.enabled is not None and payload.enabled != (model.enabled and integration.enabled):
        refused = writes.set_enabled(model, payload.enabled, request)
        if refused is not None:
            raise _refused(writes.Refused(refused.error.message, refused.error))
    return _detail(get_object_or_404(_models(), pk=llm_id))


def _patch_configuration(request, model: CustomModel, payload: LLMPatch) -> None:
    """Test and write a changed model ID, endpoint, auth or test parameters."""
    integration = model.integration
    config = saved_config(integration, model, replacing_auth="auth" in payload.model_fields_set)
    if payload.model is not None:
        config = replace(config, model_id=payload.model.strip())
    if payload.uri is not None:
        config = replace(config, endpoint=_endpoint(payload.uri))
    stored = None
    if "auth" in payload.model_fields_set:
        auth, stored = _auth_config(payload.auth, request, {config.route()})
        config = replace(config, auth=auth)
    params = payload.test_model_parameters or model.test_model_parameters
    change = writes.ConnectionChange(
        config=config,
        test_params=params,
        integration=integration,
        model=model,
        subject=str(model),
        model_fields={"model_id": config.model_id, "test_model_parameters": params},
    )
    if {"uri", "auth"} & payload.model_fields_set:
        # Reaches every model of the integration: each enabled one is tested first.
        change.integration_fields = {"endpoint": config.endpoint}
        change.header_ids = {h.name: h.pk for h in integration.headers.all()}
        change.profile = integration.auth_profile
        if "auth" in payload.model_fields_set:
            change.profile, change.stored_secret = None, stored
            if config.auth.kind != AuthKind.NONE:
                change.new_profile_name = _unique_profile_name(model.name)
    try:
        writes.save_connection(change, request=request, proof=writes.RUN_TEST)
    except writes.Refused as exc:
        raise _refused(exc) from exc
    if stored is not None:
        writes.bind(stored, config.auth.bound)


@router.delete("llms/{llm_id}", response={204: None}, summary="Delete an LLM")
def delete_llm(request, llm_id: uuid.UUID):
    require_editor(request)
    writes.delete_model(get_object_or_404(_models(), pk=llm_id), request, True)
    return Status(204, None)


@router.post("llms/{llm_id}/test", response=TestOut, summary="Test an LLM now")
def test_llm(request, llm_id: uuid.UUID):
    require_editor(request)
    model = get_object_or_404(_models(), pk=llm_id)
    result, _ = writes.test_model(model, request)
    return {
        "ok": result.ok,
        "status_code": result.status_code,
        "latency_ms": result.latency_ms,
        "reply": result.content,
        "finish_reason": result.finish_reason,
        "usage": usage_dict(result),
        "error": result.error.as_dict() if result.error else None,
    }
