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
from django.core.exceptions import MiddlewareNotUsed
from django.utils.decorators import sync_and_async_middleware

from integrations.llm import tracing
from integrations.telemetry import metrics


@sync_and_async_middleware
def gateway_requests(get_response):
    if not settings.METRICS_ENABLED and tracing.tracer() is None:
        raise MiddlewareNotUsed
    prefix = settings.GATEWAY_PREFIX
    gauge = metrics.in_flight if settings.METRICS_ENABLED else None

    if iscoroutinefunction(get_response):

        async def middleware(request):
            if not request.path.startswith(prefix):
                return await get_response(request)
            span = _begin(request)  # attached for the rest of this request's task
            if gauge is not None:
                gauge.inc()
            response = await get_response(request)
            return _ending(response, span, gauge)

    else:

        def middleware(request):
            if not request.path.startswith(prefix):
                return get_response(request)
            span = _begin(request)
            if gauge is not None:
                gauge.inc()
            try:
                response = get_response(request)
            finally:
                if span is not None:
                    span[1]()
            return _ending(response, span, gauge)

    return middleware


def _begin(request):
    """(span, detach) for a traced request, or None when tracing is off."""
    active = tracing.tracer()
    if active is None:
        return None
    from opentelemetry import context, propagate, trace

    meta = request.META
    parent = context.Context()  # a new trace, unless the caller sent one
    if "HTTP_TRACEPARENT" in meta:  # the caller's trace, continued (W3C Trace Context)
        carrier = {
            "traceparent": meta["HTTP_TRACEPARENT"],
            "tracestate": meta.get("HTTP_TRACESTATE", ""),
        }
        parent = propagate.extract(carrier)
    route = request.path[len(settings.GATEWAY_PREFIX) - 1 :]
    # Few attributes: the SDK checks each one, and this runs on every call.
    span = active.start_span(
        f"{request.method} {route}",
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes={"http.request.method": request.method, "http.route": route},
    )
    token = context.attach(trace.set_span_in_context(span, parent))
    return span, lambda: context.detach(token)


def _ending(response, span, gauge):
    if span is None and gauge is None:
        return response

    def end():
        if gauge is not None:
            gauge.dec()
        if span is not None:
            _end(span[0], response.status_code)

    response._resource_closers.append(end)
    return response


def _end(span, status: int) -> None:
    from opentelemetry.trace import Status, StatusCode

    if status >= 500:
        span.set_attributes({"http.response.status_code": status, "error.type": str(status)})
        span.set_status(Status(StatusCode.ERROR))
    else:
        span.set_attribute("http.response.status_code", status)
    span.end()
