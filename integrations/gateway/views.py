"""/v1/chat/completions and /v1/models in OpenAI's shapes, for apps with a gateway key.

Only enabled models of enabled integrations are served, through the same client, the
same origin-bound secrets and the same scrubbing as the Test button and the Sandbox.
Errors answer {"error": {"message", "type", "code", "param"}} with the right status.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import os
import time
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import SynchronousOnlyOperation
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections
from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from config.loops import loop_local
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


@dataclass
class _Plan:
    """An admitted call: who asks, for which model, with what, holding which budget."""

    request: object
    key: object
    goal: services.Target
    chat: wire.ChatRequest
    hold: object
    started: float
    progress: dict = field(default_factory=dict)

    @property
    def passthrough(self) -> bool:
        return self.goal.model.integration.protocol in wire.OPENAI_SHAPED

    def settle(self, result: CallResult, ttft=None) -> tuple:
        """Meter the call and settle its budget hold; return (prompt, completion, cost)."""
        tokens = _finish_row(
            self.request, self.key, self.goal.model, self.chat, result, self.started, ttft
        )
        limits.settle(self.hold, *tokens)
        return tokens

    def abandon(self, parts: list[str], ttft=None) -> None:
        """The client went away: meter what was used (the caller closes the upstream)."""
        usage = self.progress.get("usage")
        partial = CallResult(
            ok=False,
            content="".join(parts),
            streamed=self.chat.stream,
            usage=usage if isinstance(usage, Usage) else Usage(),
            error=LLMError("connection", "The client closed the stream."),
        )
        self.settle(partial, ttft)

    def left_early(self) -> None:
        """The client went away before there was a response to close: meter the call and
        write its row now, since no response closer will."""
        self.abandon([])
        metering.flush(self.request)


def _admit(request) -> _Plan | JsonResponse:
    """Everything before the upstream is called: the key, the body, the model, the limits."""
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
    return _Plan(request, key, goal, chat, hold, started)


def _answer(plan: _Plan, result: CallResult) -> JsonResponse:
    """A non-streamed call's answer, after metering it."""
    tokens = plan.settle(result)
    if not result.ok:
        return _upstream_error(result)
    answer = wire.completion(result, plan.chat.model, plan.passthrough)
    answer["usage"] = wire.usage_dict(Usage(tokens[0], tokens[1], tokens[0] + tokens[1]))
    return JsonResponse(answer)


@csrf_exempt
@login_not_required
@require_POST
@callcache.one_look
async def chat_completions(request):
    """On an event loop (ASGI) no thread is held while the upstream talks; under WSGI
    (runserver, the tests' live server) the same steps run on the request's thread."""
    if not isinstance(request, ASGIRequest):
        return await sync_to_async(_chat_completions)(request)
    plan = await _admitted(request)
    if not isinstance(plan, _Plan):
        return plan
    try:
        if plan.chat.stream:
            return await _stream_async(plan)
        result = plan.goal.failed or await client.acall(plan.goal.config, plan.chat.prompt)
    except asyncio.CancelledError:  # the client left while the upstream had said nothing
        await _off_loop(plan.left_early)()
        raise
    return _on_loop(_answer, plan, result)


async def _admitted(request):
    """Admit on the event loop itself. With this worker's caches warm, admission asks
    Redis a few questions (well under a millisecond) and the database nothing, where a
    hop to a thread and back cost ~2 ms each under a 256-stream burst. A step that needs
    the database (a cold cache, a key's once-a-minute last-used time, the month's first
    budget check) is refused by Django before its query runs, and nothing before it has
    been counted, so the admission runs again from the start on a thread.

    Only a few go to threads at once. In a burst on cold caches every call misses
    together; the first loads what the rest need, and those waiting then find it
    cached and are admitted on the loop after all."""
    await callcache.look_on_loop()
    if os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):  # Django would not stop a query here
        return await _off_loop(_admit)(request)
    try:
        return _on_loop(_admit, request)
    except SynchronousOnlyOperation:
        pass
    async with _to_database():
        try:
            return _on_loop(_admit, request)
        except SynchronousOnlyOperation:
            return await _off_loop(_admit)(request)


_DATABASE_TURNS = 4


def _to_database() -> asyncio.Semaphore:
    """The running loop's turns at an admission that needs the database."""
    return loop_local("database turns", lambda: asyncio.Semaphore(_DATABASE_TURNS))


def _on_loop(step, *args):
    """Run a step in a context of its own (on the loop, or inside a thread hop).

    Django keeps database connections per context, and asgiref carries a hop's context
    changes back to its caller. A connection object made by one step (even unused) would
    be inherited by the request's next step on another thread, which may not close a
    connection made on another: it would never go back to PostgreSQL's pool.
    """
    return contextvars.copy_context().run(step, *args)


def _off_loop(step):
    """Run a blocking step (the database on a cache miss) on the loop's thread pool, then
    give back any database connection it took: the pool's threads outlive requests."""

    def run(*args):
        try:
            return step(*args)
        finally:
            close_old_connections()

    return sync_to_async(functools.partial(_on_loop, run), thread_sensitive=False)


def _chat_completions(request):
    plan = _admit(request)
    if not isinstance(plan, _Plan):
        return plan
    if plan.chat.stream:
        return _stream(plan)
    return _answer(plan, plan.goal.failed or client.call(plan.goal.config, plan.chat.prompt))


def _sse(data) -> bytes:
    return f"data: {json.dumps(data) if not isinstance(data, str) else data}\n\n".encode()


class _Relay:
    """Upstream items (text deltas, then the CallResult) as OpenAI chunks. The first
    upstream event is awaited before answering, so a call that fails at once answers with
    its status; a break later is an error event. What is ready together goes out in one
    write (the opening chunk with the first delta; the closing chunks with [DONE]): the
    writes to the client's socket were a worker's largest single cost in a burst.
    Shared by the thread and the event-loop streams below. Metering (`end`, `abandon`,
    `refusal`) asks Redis and never the database (the row is written after the response),
    so the loop runs it in place."""

    def __init__(self, plan: _Plan):
        self.plan = plan
        self.cid = wire.completion_id()
        self.chunks = wire.Chunks(self.cid, plan.chat.model)
        self.parts: list[str] = []
        self.ttft = None
        self.finished = False

    def refusal(self, first) -> JsonResponse | None:
        if isinstance(first, CallResult) and not first.ok:
            self.finished = True
            self.plan.settle(first)
            return _upstream_error(first)
        return None

    def start(self) -> bytes:
        return _sse(
            wire.chunk(self.cid, self.plan.chat.model, {"role": "assistant", "content": ""})
        )

    def delta(self, text: str) -> bytes:
        if self.ttft is None:
            self.ttft = round((time.perf_counter() - self.plan.started) * 1000)
        self.parts.append(text)
        return self.chunks.content(text)

    def end(self, result: CallResult) -> list[bytes]:
        self.finished = True
        chat, out = self.plan.chat, []
        if result.content and not self.parts:  # an upstream that answered in one piece
            out.append(_sse(wire.chunk(self.cid, chat.model, {"content": result.content})))
        result.content = result.content or "".join(self.parts)
        tokens = self.plan.settle(result, self.ttft)
        if not result.ok:
            error = result.error
            out.append(_sse(wire.error_body(error.headline, "upstream_error", str(error.kind))))
        else:
            out.append(_sse(wire.chunk(self.cid, chat.model, {}, result.finish_reason or "stop")))
            if chat.include_usage:
                usage = wire.usage_dict(Usage(tokens[0], tokens[1], sum(tokens[:2])))
                out.append(_sse(wire.chunk(self.cid, chat.model, {}, usage=usage)))
        out.append(_sse("[DONE]"))
        return out

    def abandon(self) -> None:
        self.plan.abandon(self.parts, self.ttft)

    def response(self, events) -> StreamingHttpResponse:
        response = StreamingHttpResponse(events, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response


def _stream(plan: _Plan):
    goal, relay = plan.goal, _Relay(plan)
    upstream = (
        iter([goal.failed])
        if goal.failed
        else client.stream(goal.config, plan.chat.prompt, plan.progress)
    )
    first = next(upstream)
    if refused := relay.refusal(first):
        return refused

    def events():
        item, head = first, relay.start()
        try:
            while isinstance(item, str):
                yield head + relay.delta(item)
                head, item = b"", next(upstream)
            yield head + b"".join(relay.end(item))
        finally:
            if not relay.finished:
                upstream.close()
                relay.abandon()

    return relay.response(events())


async def _stream_async(plan: _Plan):
    goal, relay = plan.goal, _Relay(plan)
    if goal.failed:
        return _on_loop(relay.refusal, goal.failed)
    upstream = client.astream(goal.config, plan.chat.prompt, plan.progress)
    first = await anext(upstream)
    if isinstance(first, CallResult) and not first.ok:
        return _on_loop(relay.refusal, first)

    async def events():
        item, head = first, relay.start()
        try:
            while isinstance(item, str):
                yield head + relay.delta(item)
                head, item = b"", await anext(upstream)
            yield head + b"".join(_on_loop(relay.end, item))
        finally:
            if not relay.finished:
                await upstream.aclose()
                _on_loop(relay.abandon)

    return relay.response(events())
