"""/v1/chat/completions and /v1/models in OpenAI's shapes, for apps with a gateway key.

Only enabled models of enabled integrations are served, through the same client, the
same origin-bound secrets and the same scrubbing as the Test button and the Sandbox.
Errors answer {"error": {"message", "type", "code", "param"}} with the right status.
"""

from __future__ import annotations

import json
import time

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from integrations import callcache, services
from integrations.gateway import keys, limits, metering, wire
from integrations.llm import client
from integrations.llm.config import CallResult, Usage, counted
from integrations.llm.errors import LLMError

MAX_BODY = 4 * 1024 * 1024


def _error(status: int, message: str, type_: str, code=None, param=None, headers=None):
    response = JsonResponse(wire.error_body(message, type_, code, param), status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _key(request):
    raw = request.headers.get("Authorization", "")
    raw = raw[7:].strip() if raw[:7].lower() == "bearer " else ""
    return keys.authenticate(raw)


def _unauthorized():
    return _error(
        401,
        "Invalid, expired or revoked gateway key. Pass one as Authorization: Bearer sk-byo-…",
        "invalid_request_error",
        "invalid_api_key",
    )


def _not_found(name: str):
    return _error(
        404,
        f"The model {name[:100]!r} does not exist, is disabled, or this key may not use it.",
        "invalid_request_error",
        "model_not_found",
        "model",
    )


@csrf_exempt
@login_not_required
@require_GET
@callcache.one_look
def models(request):
    key = _key(request)
    if key is None:
        return _unauthorized()
    names = keys.public_names(keys.models_for(key))
    created = {m.pk: int(m.created_at.timestamp()) for m in names.values()}
    data = [
        {"id": name, "object": "model", "created": created[m.pk], "owned_by": m.integration.name}
        for name, m in names.items()
    ]
    return JsonResponse({"object": "list", "data": data})


def _finish_row(request, key, model, chat, result: CallResult, started, ttft=None):
    """The call's usage row (estimated when the upstream reports none) and its cost."""
    prompt_tokens, completion_tokens, estimated = counted(
        result.usage, chat.prompt.text(), result.content
    )
    cost = model.cost(prompt_tokens, completion_tokens)
    metering.record(
        request,
        source="gateway",
        key=key,
        user=key.owner,
        model=model,
        model_name=model.name,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        estimated=estimated,
        cost=cost,
        latency_ms=round((time.perf_counter() - started) * 1000),
        ttft_ms=ttft if ttft is not None else result.ttft_ms,
        ok=result.ok,
        status_code=result.status_code,
        error_kind=result.error.kind if result.error else "",
        streamed=chat.stream,
        prompt=_storable(chat.messages) if key.store_prompts else None,
    )
    return prompt_tokens, completion_tokens, cost


def _storable(messages):
    """Messages as a JSON column takes them: no NUL, no lone surrogate."""
    text = json.dumps(messages, ensure_ascii=False).encode("utf-8", "replace").decode()
    return json.loads(text.replace("\\u0000", ""))


def _upstream_error(result: CallResult):
    error = result.error
    status = wire.STATUS_FOR_KIND.get(error.kind, 502)
    message = f"{error.headline} {error.hint}"
    if error.upstream_message:
        message += f" The upstream said: {error.upstream_message}"
    return _error(status, message, "upstream_error", str(error.kind))


@csrf_exempt
@login_not_required
@require_POST
@callcache.one_look
def chat_completions(request):
    started = time.perf_counter()
    key = _key(request)
    if key is None:
        return _unauthorized()
    if len(request.body) > MAX_BODY:
        return _error(413, "The request body is over 4 MiB.", "invalid_request_error")
    try:
        body = json.loads(request.body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _error(400, "The body is not valid JSON.", "invalid_request_error")
    models_by_name: dict = {}

    def protocol_of(name):
        model = models_by_name.setdefault(name, keys.resolve(key, name))
        if model is None:
            return None
        custom_body = (model.request_template or model.integration.request_template) is not None
        return "a custom request body" if custom_body else model.integration.protocol

    try:
        chat = wire.parse(body, protocol_of)
    except wire.WireError as exc:
        return _error(400, exc.message, "invalid_request_error", exc.code, exc.param)
    model = models_by_name.get(chat.model) or keys.resolve(key, chat.model)
    goal = services.target(model.pk) if model is not None else None
    if goal is None:
        return _not_found(chat.model)
    try:
        hold = limits.admit(key, goal.model, chat.prompt)
    except limits.Limited as exc:
        status = 403 if exc.code == "model_not_priced" else 429
        headers = {"Retry-After": str(exc.retry_after)} if status == 429 else None
        return _error(
            status,
            exc.message,
            "rate_limit_error" if status == 429 else "permission_error",
            exc.code,
            headers=headers,
        )
    passthrough = goal.model.integration.protocol in wire.OPENAI_SHAPED
    if chat.stream:
        return _stream(request, key, goal, chat, hold, started)
    result = goal.failed or client.call(goal.config, chat.prompt)
    tokens = _finish_row(request, key, goal.model, chat, result, started)
    limits.settle(hold, *tokens)
    if not result.ok:
        return _upstream_error(result)
    answer = wire.completion(result, chat.model, passthrough)
    answer["usage"] = wire.usage_dict(Usage(tokens[0], tokens[1], tokens[0] + tokens[1]))
    return JsonResponse(answer)


def _sse(data) -> bytes:
    return f"data: {json.dumps(data) if not isinstance(data, str) else data}\n\n".encode()


def _stream(request, key, goal, chat, hold, started):
    """Stream OpenAI chunks. The first upstream event is awaited before answering, so a
    call that fails at once answers with its status; a break later is an error event."""
    progress: dict = {}
    generator = (
        iter([goal.failed]) if goal.failed else client.stream(goal.config, chat.prompt, progress)
    )
    first = next(generator)
    if isinstance(first, CallResult) and not first.ok:
        tokens = _finish_row(request, key, goal.model, chat, first, started)
        limits.settle(hold, *tokens)
        return _upstream_error(first)
    cid = wire.completion_id()
    chunks = wire.Chunks(cid, chat.model)

    def events():
        parts: list[str] = []
        finished = False
        ttft = None
        item = first
        try:
            yield _sse(wire.chunk(cid, chat.model, {"role": "assistant", "content": ""}))
            while True:
                if isinstance(item, str):
                    if ttft is None:
                        ttft = round((time.perf_counter() - started) * 1000)
                    parts.append(item)
                    yield chunks.content(item)
                else:
                    finished = True
                    result = item
                    if result.content and not parts:  # an upstream that answered in one piece
                        yield _sse(wire.chunk(cid, chat.model, {"content": result.content}))
                    result.content = result.content or "".join(parts)
                    tokens = _finish_row(request, key, goal.model, chat, result, started, ttft)
                    limits.settle(hold, *tokens)
                    if not result.ok:
                        error = result.error
                        yield _sse(
                            wire.error_body(error.headline, "upstream_error", str(error.kind))
                        )
                    else:
                        yield _sse(wire.chunk(cid, chat.model, {}, result.finish_reason or "stop"))
                        if chat.include_usage:
                            usage = wire.usage_dict(Usage(tokens[0], tokens[1], sum(tokens[:2])))
                            yield _sse(wire.chunk(cid, chat.model, {}, usage=usage))
                    yield _sse("[DONE]")
                    return
                item = next(generator)
        finally:
            if not finished:
                # The client went away: close the upstream call and meter what was used.
                generator.close()
                usage = progress.get("usage")
                partial = CallResult(
                    ok=False,
                    content="".join(parts),
                    streamed=True,
                    usage=usage if isinstance(usage, Usage) else Usage(),
                    error=LLMError("connection", "The client closed the stream."),
                )
                tokens = _finish_row(request, key, goal.model, chat, partial, started, ttft)
                limits.settle(hold, *tokens)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
