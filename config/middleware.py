from __future__ import annotations

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import JsonResponse


class ConsoleLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Pages need a session; the REST API and the gateway authenticate each call with a
    token or a key instead (and skip the session lookup)."""

    API_PREFIX = "/api/"
    GATEWAY_PREFIX = "/v1/"

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path.startswith(self.API_PREFIX) and not request.path.startswith("/api/docs"):
            return None
        if request.path.startswith(self.GATEWAY_PREFIX):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


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


def content_security_policy(get_response):
    """Send the policy on every answer that does not set its own."""

    def middleware(request):
        response = get_response(request)
        policy = DOCS_POLICY if request.path.startswith("/api/docs") else CONTENT_SECURITY_POLICY
        response.headers.setdefault("Content-Security-Policy", policy)
        return response

    return middleware


def api_errors_as_json(get_response):
    """Under /api/, an unknown path or a wrong method answers JSON {message}, as every
    other API error does, not an HTML page; under the gateway's /v1/, in OpenAI's shape."""
    messages = {
        404: "Not found: no API operation at this path. See /api/docs.",
        405: "Method not allowed for this path.",
    }

    def middleware(request):
        response = get_response(request)
        is_api = request.path.startswith("/api/") and not request.path.startswith("/api/docs")
        html = "json" not in response.get("Content-Type", "")
        if request.path.startswith("/v1/") and html and response.status_code in messages:
            from integrations.gateway.wire import error_body

            code = "unknown_url" if response.status_code == 404 else "method_not_allowed"
            message = (
                "No such gateway endpoint: use /v1/chat/completions or /v1/models."
                if response.status_code == 404
                else messages[405]
            )
            body = error_body(message, "invalid_request_error", code)
            return JsonResponse(body, status=response.status_code)
        if is_api and html and response.status_code in messages:
            message = messages[response.status_code]
            if response.has_header("Allow"):
                message += f" Allowed: {response['Allow']}."
            json_response = JsonResponse({"message": message}, status=response.status_code)
            if response.has_header("Allow"):
                json_response["Allow"] = response["Allow"]
            return json_response
        return response

    return middleware
