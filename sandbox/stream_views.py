"""Streaming a Sandbox column: server-sent events (start, token..., done with the result
panel), and Stop, which ends a stream on the server where the browser is."""

from __future__ import annotations

import json
import time
import uuid

from django.http import JsonResponse, StreamingHttpResponse
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from integrations.gateway import routed
from integrations.llm.chat import BlockDelta
from integrations.llm.config import CallResult, Usage
from integrations.llm.errors import LLMError
from sandbox import ratelimit, services, stops
from sandbox.forms import SandboxForm, is_uuid
from sandbox.models import SandboxRun
from sandbox.views import PAGE, _ctx, _result


def _sse(event: str, data) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _done(run: SandboxRun, request) -> dict:
    html = render_to_string(f"{PAGE}#result", _result(run), request)
    return {"html": html, "run": str(run.pk)}


def _refuse(event: str, data) -> StreamingHttpResponse:
    return StreamingHttpResponse(iter([_sse(event, data)]), content_type="text/event-stream")


@require_POST
def stream(request):
    """Stream one column's reply as server-sent events: start, token..., done with the
    result panel. A compare opens one stream per column, all at once, sharing `group`."""
    form = SandboxForm(request.POST)
    index = request.POST.get("column", "0")
    index = int(index) if index.isdigit() else 0
    positions = [c.column for c in form.columns]
    picked = form.targets(only=index) if form.is_valid() and index in positions else None
    if not picked:
        html = render_to_string(f"{PAGE}#sandbox-form", _ctx(request, form), request)
        return _refuse("invalid", {"html": html})
    wait = ratelimit.check(request.user.pk, 1)
    if wait:
        return _refuse("refused", {"message": f"Too many runs: try again in {wait} s."})
    goal, prompt = picked[0]
    group = request.POST.get("group", "")
    group = uuid.UUID(group) if is_uuid(group) and len(positions) > 1 else None
    user, position = request.user, positions.index(index)

    watch = stops.Watch(user.pk, request.POST.get("stream", ""))
    template = form.template()

    def events():
        run = services.new_run(
            user, services.first_model(goal), prompt, True, group, position, template
        )
        via = goal if isinstance(goal, routed.Routed) else None
        started = time.perf_counter()
        progress: dict = {}
        parts: list[str] = []
        finished = False
        generator = services.streamed(goal, prompt, progress)

        def stop() -> SandboxRun:
            # Close the upstream and keep what came: the text sent to the browser, the
            # time it took and any usage already reported.
            if hasattr(generator, "close"):
                generator.close()
            usage = progress.get("usage")
            stopped = CallResult(
                ok=False,
                content="".join(parts),
                streamed=True,
                usage=usage if isinstance(usage, Usage) else Usage(),
                latency_ms=round((time.perf_counter() - started) * 1000),
                ttft_ms=progress.get("ttft_ms"),
                request=progress.get("request") or {},
                error=LLMError("connection", "Stopped by the user."),
            )
            return services.finish(run, stopped, request, stopped=True, via=via)

        try:
            yield _sse("start", {"model": via.route.name if via else run.model_name,
                                 "column": position})  # fmt: skip
            for item in generator:
                if isinstance(item, BlockDelta) and item.kind == "text" and item.text:
                    token = {"t": item.text}
                    if not parts:  # the one first-token figure, as the run keeps it
                        token["ttft"] = progress.get("ttft_ms")
                    parts.append(item.text)
                    yield _sse("token", token)
                    if watch.stopped():
                        finished = True
                        stop()
                        yield _sse("done", _done(run, request))
                        return
                elif isinstance(item, CallResult):
                    finished = True
                    services.finish(run, item, request, via=via)
                    yield _sse("done", _done(run, request))
        finally:
            if not finished:  # the browser went away (or gave up waiting for the stop)
                stop()

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # let proxies pass tokens through at once
    return response


@require_POST
def stop(request):
    """Stop the person's streaming columns named in `stream` (one per column): each
    stream then ends with the run as the browser saw it."""
    taken = stops.request(request.user.pk, request.POST.getlist("stream"))
    return JsonResponse({"stopping": taken})
