from __future__ import annotations

from django.contrib.auth.middleware import LoginRequiredMiddleware


class ConsoleLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Pages need a session; the REST API authenticates each call with a token instead."""

    API_PREFIX = "/api/v2/"

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path.startswith(self.API_PREFIX):
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
