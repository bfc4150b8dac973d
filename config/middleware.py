"""The console's own middleware. Each runs in both server modes: under WSGI (runserver,
the tests' live server) and under ASGI (production: gunicorn with uvicorn workers), where
a middleware that could only run synchronously would cost every request a hop to a
thread and back."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpResponse, JsonResponse
from django.middleware.security import SecurityMiddleware
from django.utils.decorators import sync_and_async_middleware
from whitenoise.middleware import WhiteNoiseMiddleware


def on_response(finish):
    """Middleware from finish(request, response) -> response, for either server mode."""

    @sync_and_async_middleware
    def factory(get_response):
        if iscoroutinefunction(get_response):

            async def middleware(request):
                return finish(request, await get_response(request))

        else:

            def middleware(request):
                return finish(request, get_response(request))

        return middleware

    factory.__name__ = factory.__qualname__ = finish.__name__
    factory.__doc__ = finish.__doc__
    return factory


_END = object()


@sync_and_async_middleware
def asgi_streams(get_response):
    """Under ASGI, send a synchronous stream (the Sandbox's events, a static file) as it
    is produced: Django would read it whole first. Each chunk is pulled on the request's
    own thread. When the client leaves, Django cancels the send and closes the response,
    which closes the iterator there. Under WSGI there is nothing to do.
    """
    if not iscoroutinefunction(get_response):
        raise MiddlewareNotUsed

    async def middleware(request):
        response = await get_response(request)
        if response.streaming and not response.is_async:
            response.streaming_content = _pulled(response.streaming_content)
        return response

    return middleware


async def _pulled(iterator):
    pull = sync_to_async(next, thread_sensitive=True)
    while (part := await pull(iterator, _END)) is not _END:
        yield part


# The seed products' own paths, served by the REST API (README, "REST API"): Vectara's
# https://api.vectara.io/v2/llms, and LiveAvatar's /v1/secrets and /v1/llm_configurations.
SEED_PATHS = (("/v2/", "/api/v2/"), ("/v1/secrets", "/api/v2/secrets"),
              ("/v1/llm_configurations", "/api/v2/llm_configurations"))  # fmt: skip


@sync_and_async_middleware
def seed_api_paths(get_response):
    """Serve a seed product's path as the API's own: scripts written for Vectara or
    LiveAvatar work unchanged (with the API token as their x-api-key)."""

    def rewrite(request) -> None:
        path = request.path_info
        for theirs, ours in SEED_PATHS:
            if path.startswith(theirs) and (
                theirs.endswith("/") or path[len(theirs) :][:1] in ("", "/")
            ):
                request.path_info = request.path = ours + path[len(theirs) :]
                request.META["PATH_INFO"] = request.path_info
                return

    if iscoroutinefunction(get_response):

        async def middleware(request):
            rewrite(request)
            return await get_response(request)

    else:

        def middleware(request):
            rewrite(request)
            return get_response(request)

    return middleware


class Security(SecurityMiddleware):
    """Django's SecurityMiddleware (HTTPS redirect, HSTS, nosniff, referrer policy). Its
    hooks only read settings and set headers, so on the event loop they run in place;
    Django's own async mode would hop to a thread and back for each."""

    async def __acall__(self, request):
        response = self.process_request(request)
        if response is None:
            response = await self.get_response(request)
        return self.process_response(request, response)

    def process_request(self, request):
        """Pages over plain HTTP are redirected to HTTPS. An API or gateway call is told
        why instead (403, JSON): SDKs do not follow a redirect of a POST, and showed only
        "Connection error"."""
        redirect = super().process_request(request)
        if redirect is None:
            return None
        path = request.path
        if not path.startswith(("/v1/", "/api/")):
            return redirect
        message = (
            "This console answers API and gateway calls over HTTPS only: call "
            f"{redirect['Location']}. Behind a TLS proxy, the proxy must send "
            "X-Forwarded-Proto: https (README, Production)."
        )
        if path.startswith("/v1/messages"):  # Anthropic's error shape
            body = {"type": "error", "error": {"type": "permission_error", "message": message}}
        elif path.startswith("/v1/"):
            body = {"error": {"message": message, "type": "invalid_request_error",
                              "param": None, "code": "https_required"}}  # fmt: skip
        else:
            body = {"detail": message}
        return JsonResponse(body, status=403)


class StaticFiles(WhiteNoiseMiddleware):
    """WhiteNoise in either mode: on the event loop, a request for anything but a static
    file passes straight on; a static file is found and opened on a thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, settings=settings):
        super().__init__(get_response, settings)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._serve_async(request)
        return super().__call__(request)

    async def _serve_async(self, request):
        if self.autorefresh:
            static_file = await sync_to_async(self.find_file)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is None:
            return await self.get_response(request)
        return await sync_to_async(self.serve)(static_file, request)


class ConsoleLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Pages need a session; the REST API and the gateway authenticate each call with a
    token or a key instead (and skip the session lookup)."""

    API_PREFIX = "/api/"
    GATEWAY_PREFIX = settings.GATEWAY_PREFIX

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path.startswith(self.API_PREFIX) and not request.path.startswith("/api/docs"):
            return None
        if request.path.startswith(self.GATEWAY_PREFIX):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


@sync_and_async_middleware
def gateway_cors(get_response):
    """CORS for the gateway (/v1/), so a browser app may call it: the origins in
    GATEWAY_CORS_ORIGINS (off when empty; "*" for any) get the answer, and a preflight
    is answered here, before a view that takes only POST would refuse it."""

    def preflight(request):
        if (
            not request.path.startswith(settings.GATEWAY_PREFIX)
            or not settings.GATEWAY_CORS_ORIGINS
        ):
            return None
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            response = HttpResponse(status=204)
            if _cors(request, response):
                response["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
                asked = request.headers.get("access-control-request-headers", "")
                response["Access-Control-Allow-Headers"] = (
                    asked[:2000] or "authorization, content-type"
                )
                response["Access-Control-Max-Age"] = "600"
            return response
        return None

    def finish(request, response):
        if request.path.startswith(settings.GATEWAY_PREFIX) and settings.GATEWAY_CORS_ORIGINS:
            _cors(request, response)
        return response

    if iscoroutinefunction(get_response):

        async def middleware(request):
            return preflight(request) or finish(request, await get_response(request))

    else:

        def middleware(request):
            return preflight(request) or finish(request, get_response(request))

    return middleware


def _cors(request, response) -> bool:
    origin = request.headers.get("origin", "")
    allowed = settings.GATEWAY_CORS_ORIGINS
    if not origin or ("*" not in allowed and origin not in allowed):
        return False
    response["Access-Control-Allow-Origin"] = "*" if "*" in allowed else origin
    response["Access-Control-Expose-Headers"] = "Retry-After, X-Usage-Estimated"
    response.headers.setdefault("Vary", "Origin")
    return True


# No inline script anywhere: page behaviour lives in static/js, htmx is told not to
# inject its indicator <style>, and nothing may frame the console.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# Swagger UI (served locally at /api/docs) sets styles from its script.
DOCS_POLICY = CONTENT_SECURITY_POLICY.replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)


@on_response
def content_security_policy(request, response):
    """Send the policy on every answer that does not set its own."""
    policy = DOCS_POLICY if request.path.startswith("/api/docs") else CONTENT_SECURITY_POLICY
    response.headers.setdefault("Content-Security-Policy", policy)
    return response


API_MESSAGES = {
    404: "Not found: no API operation at this path. See /api/docs.",
    405: "Method not allowed for this path.",
}


@on_response
def api_errors_as_json(request, response):
    """Under /api/, an unknown path or a wrong method answers JSON {message}, as every
    other API error does, not an HTML page; under the gateway's /v1/, in OpenAI's shape."""
    status = response.status_code
    if status not in API_MESSAGES or "json" in response.get("Content-Type", ""):
        return response
    if request.path.startswith(settings.GATEWAY_PREFIX):
        from integrations.llm.wires.openai_chat import error_body

        if status == 404:
            message = "No such gateway endpoint: use /v1/chat/completions or /v1/models."
        else:
            message = API_MESSAGES[405]
        code = "unknown_url" if status == 404 else "method_not_allowed"
        return JsonResponse(error_body(message, "invalid_request_error", code), status=status)
    if request.path.startswith("/api/") and not request.path.startswith("/api/docs"):
        message = API_MESSAGES[status]
        if response.has_header("Allow"):
            message += f" Allowed: {response['Allow']}."
        json_response = JsonResponse({"message": message}, status=status)
        if response.has_header("Allow"):
            json_response["Allow"] = response["Allow"]
        return json_response
    return response
