from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return "unreachable"
    return "ok"


def _cache() -> str:
    """The shared cache (Redis) holds limits, sessions and the configuration generation:
    without it no gateway call or login works. A local-memory cache needs no check."""
    if not hasattr(cache, "sliding_window"):
        return "local"
    try:
        cache.set("healthz", 1, timeout=10)
        return "ok" if cache.get("healthz") == 1 else "unreachable"
    except Exception:  # whatever the client raises when the server is away
        return "unreachable"


@login_not_required
@never_cache
@require_GET
def healthz(request):
    """Answer without login: each dependency this configuration needs, and 503 when one
    of them is down (a load balancer then stops sending traffic here)."""
    checks = {"database": _database(), "cache": _cache()}
    if settings.USAGE_WRITE == "background":
        from integrations.gateway import spool

        checks["usage_spool"] = spool.writable()
    down = [name for name, state in checks.items() if state not in ("ok", "local")]
    status = 503 if down else 200
    return JsonResponse({"status": "error" if down else "ok", **checks}, status=status)


@login_not_required
@require_GET
def favicon(request):
    """Browsers ask for /favicon.ico on pages that name no icon (the Django admin's)."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))
