"""The gateway's /v1 endpoints for apps with a gateway key; each door reads and answers
in its own format (integrations/gateway/doors/) and runs the same admission and relay.

Only enabled models of enabled integrations are served, through the same client, the
same origin-bound secrets and the same scrubbing as the Test button and the Sandbox.
"""

from __future__ import annotations

import functools
from dataclasses import replace

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_not_required
from django.core.handlers.asgi import ASGIRequest
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations import callcache, services
from integrations.gateway import admission, keys, outages, relay, routing
from integrations.gateway.doors import ANTHROPIC, EMBEDDINGS, OPENAI, RESPONSES
from integrations.gateway.doors import responses as responses_door
from integrations.llm import client
from integrations.llm.config import estimate_tokens
from integrations.llm.wires.anthropic import door as anthropic_wire


def _door_view(door):
    """The async view for a door: on an event loop (ASGI) no thread is held while the
    upstream talks; under WSGI (runserver, the tests' live server) the same steps run on
    the request's thread."""

    async def view(request):
        if not isinstance(request, ASGIRequest):
            return await sync_to_async(_sync_view)(request, door)
        plan = await admission.admitted(request, door)
        if not isinstance(plan, admission.Plan):
            return plan
        return await relay.serve(request, door, plan)

    guarded = outages.answers_in_shape(callcache.one_look(view), door=door)
    return csrf_exempt(login_not_required(require_POST(guarded)))


def _sync_view(request, door):
    plan = admission.admit(request, door)
    if not isinstance(plan, admission.Plan):
        return plan
    return relay.serve_sync(plan)


chat_completions = _door_view(OPENAI)
messages = _door_view(ANTHROPIC)
responses = _door_view(RESPONSES)
embeddings = _door_view(EMBEDDINGS)


@csrf_exempt
@login_not_required
@require_http_methods(["GET", "DELETE"])
@outages.answers_in_shape
@callcache.one_look
def stored_response(request, response_id: str):
    """A stored response, fetched or deleted by the key that made it."""
    key = keys.authenticate(admission.presented_key(request))
    if key is None:
        return RESPONSES.unauthorized()
    found = responses_door.stored(key, response_id)
    if found is None:
        message = f"No response with id {response_id[:64]!r} is stored for this key."
        return RESPONSES.error(404, message, "invalid_request_error", "not_found", "response_id")
    if request.method == "DELETE":
        found.delete()
        return JsonResponse({"id": found.id, "object": "response", "deleted": True})
    return JsonResponse(found.response)


@csrf_exempt
@login_not_required
@require_POST
@outages.answers_in_shape(door=ANTHROPIC)
@callcache.one_look
def count_tokens(request):
    """Anthropic's count of a Messages body: the upstream's own where it is Anthropic,
    else an estimate, marked as one. Nothing is generated, so nothing is metered."""
    understood = admission.understood(
        request, ANTHROPIC, functools.partial(anthropic_wire.read_request, counting=True)
    )
    if isinstance(understood, admission.Refusal):  # nothing is generated: no usage row
        return understood.response
    _, ask, goal, route, _ = understood
    if route is not None:  # counted as its first target would count it
        goal = services.target(route.legs[0].model_pk) or goal
    forward = ANTHROPIC.forward_body(ask, goal, request)
    tokens = None
    if forward is not None and not goal.failed:
        body = {k: v for k, v in forward.body.items() if k not in ("max_tokens", "stream")}
        tokens = client.count_tokens(goal.config, replace(forward, body=body, path="/count_tokens"))
    if tokens is not None:
        return JsonResponse({"input_tokens": tokens})
    response = JsonResponse({"input_tokens": estimate_tokens(ask.prompt.text()), "estimated": True})
    response["X-Usage-Estimated"] = "true"
    return response


def _model_entry(name: str, model, anthropic: bool) -> dict:
    """A model's or a route's entry (a route is owned by "route")."""
    if anthropic:
        created = model.created_at.isoformat().replace("+00:00", "Z")
        return {"type": "model", "id": name, "display_name": name, "created_at": created}
    integration = getattr(model, "integration", None)
    return {
        "id": name,
        "object": "model",
        "created": int(model.created_at.timestamp()),
        "owned_by": integration.name if integration is not None else "route",
    }


def _speaks_anthropic(request) -> bool:
    """Anthropic's clients send anthropic-version on every call, model lists included."""
    return bool(request.headers.get("anthropic-version"))


@csrf_exempt
@login_not_required
@require_GET
@outages.answers_in_shape
@callcache.one_look
def models(request):
    anthropic = _speaks_anthropic(request)
    door = ANTHROPIC if anthropic else OPENAI
    key = keys.authenticate(admission.presented_key(request))
    if key is None:
        return door.unauthorized()
    names = {r.name: r for r in routing.routes_for(key)}
    names.update(keys.public_names(keys.models_for(key)))
    data = [_model_entry(name, m, anthropic) for name, m in sorted(names.items())]
    if not anthropic:
        return JsonResponse({"object": "list", "data": data})
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return JsonResponse({"data": data, "has_more": False, "first_id": first, "last_id": last})


@csrf_exempt
@login_not_required
@require_GET
@outages.answers_in_shape
@callcache.one_look
def model_detail(request, name: str):
    anthropic = _speaks_anthropic(request)
    door = ANTHROPIC if anthropic else OPENAI
    key = keys.authenticate(admission.presented_key(request))
    if key is None:
        return door.unauthorized()
    model = routing.routes_for(key).filter(name=name).first() or keys.resolve(key, name)
    if model is None:
        return door.not_found(name, keys.ambiguous(key, name))
    return JsonResponse(_model_entry(name, model, anthropic))
