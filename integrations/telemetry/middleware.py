"""The gateway's requests as operators see them: how many are in flight, and (tracing on)
a SERVER span around each, continuing the caller's `traceparent`.

Both end when the server closes the response, so a stream counts until its last byte.
The upstream calls' CLIENT spans (integrations/llm/tracing.py) start inside the server
span's context: under WSGI a stream's steps run in the context the view made
(client._pinned); under ASGI the request's task keeps it until the task ends, so it is
not detached there.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.utils.decorators import sync_and_async_middleware

from integrations.llm import tracing
from integrations.telemetry import metrics


@sync_and_async_middleware
def gateway_requests(get_response):
    prefix = settings.GATEWAY_PREFIX

    if iscoroutinefunction(get_response):

        async def middleware(request):
            if not request.path.startswith(prefix):
                return await get_response(request)
            span = _begin(request)  # attached for the rest of this request's task
            metrics.in_flight.inc()
            response = await get_response(request)
            return _ending(response, span)

    else:

        def middleware(request):
            if not request.path.startswith(prefix):
                return get_response(request)
            span = _begin(request)
            metrics.in_flight.inc()
            try:
                response = get_response(request)
            finally:
                if span is not None:
                    span[1]()
            return _ending(response, span)

    return middleware


def _begin(request):
    """(span, detach) for a traced request, or None when tracing is off."""
    active = tracing.tracer()
    if active is None:
        return None
    from opentelemetry import context, propagate, trace

    parent = propagate.extract(request.headers)
    route = request.path[len(settings.GATEWAY_PREFIX) - 1 :]
    span = active.start_span(
        f"{request.method} {route}",
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes={
            "http.request.method": request.method,
            "url.path": request.path,
            "http.route": route,
            "server.address": request.get_host().rsplit(":", 1)[0],
        },
    )
    token = context.attach(trace.set_span_in_context(span, parent))
    return span, lambda: context.detach(token)


def _ending(response, span):
    def end():
        metrics.in_flight.dec()
        if span is not None:
            _end(span[0], response.status_code)

    response._resource_closers.append(end)
    return response


def _end(span, status: int) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR))
    span.end()
