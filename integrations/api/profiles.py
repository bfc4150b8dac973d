"""/api/v2/auth-profiles: in every auth kind; secrets masked, stored secrets referenced."""

from __future__ import annotations

import uuid

from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError

from integrations import names, writes
from integrations.api.common import _edge, require_editor
from integrations.api.integrations import AuthKinds, AuthSpec, _auth
from integrations.llm import inputs
from integrations.llm.auth import AUTH_KINDS
from integrations.models import (
    AuthProfile,
)

router = Router(tags=["auth profiles"])


class AuthProfileOut(Schema):
    id: str
    name: str
    type: str
    header: str
    query_param: str
    secret: str
    used_by: list[str]


def _profile_out(profile: AuthProfile) -> dict:
    return {
        "id": str(profile.pk),
        "name": profile.name,
        "type": profile.kind,
        "header": profile.header_name,
        "query_param": profile.query_param,
        "secret": profile.masked_secret,
        "used_by": [i.name for i in profile.integrations.all()],
    }


class AuthProfileIn(AuthSpec):
    name: str = Field(min_length=1, max_length=100)
    type: AuthKinds  # type: ignore[valid-type]


@router.post("auth-profiles", response={201: AuthProfileOut}, summary="Create an auth profile")
def create_profile(request, payload: AuthProfileIn):
    require_editor(request)
    if problem := names.taken(AuthProfile, payload.name):
        raise HttpError(409, problem)
    # Typed here without an endpoint: bound on its first use by its owner (OAuth: its token URL).
    routes = set()
    if payload.token_url:
        routes.add(_edge(inputs.route, payload.token_url, field="token_url"))
    auth, _, _, stored = _auth(
        payload.model_copy(update={"profile_id": None}), None, request, routes
    )
    values = writes.profile_values(auth)
    if stored is not None:
        values[AUTH_KINDS[auth.kind].secret] = ""  # read from the stored secret on every call
    profile = AuthProfile(
        name=payload.name.strip(),
        created_by=request.user,
        stored_secret=stored,
        bound_origins=sorted(auth.bound) if stored is None else [],
        **values,
    )
    try:
        writes.save_profile(profile, request=request)
    except writes.Refused as exc:
        raise HttpError(409, exc.message) from exc
    return Status(201, _profile_out(profile))


@router.get(
    "auth-profiles", response=list[AuthProfileOut], summary="List auth profiles (secrets masked)"
)
def list_profiles(request):
    profiles = AuthProfile.objects.select_related("stored_secret").prefetch_related("integrations")
    return [_profile_out(p) for p in profiles]


@router.delete(
    "auth-profiles/{profile_id}", response={204: None}, summary="Delete an unused auth profile"
)
def delete_profile(request, profile_id: uuid.UUID):
    require_editor(request)
    profile = get_object_or_404(AuthProfile, pk=profile_id)
    used_by = writes.delete_profile(profile, request)
    if used_by:
        raise HttpError(409, f"{profile.name} is used by {', '.join(used_by)}; it was not deleted.")
    return Status(204, None)
