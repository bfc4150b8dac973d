"""/metrics: Prometheus' text format, summed over the server's workers.

Off unless METRICS_TOKEN is set; then a scraper sends `Authorization: Bearer <token>`
(Prometheus' `authorization` block). The series name keys by alias and hash, models and
routes: not for the open internet.
"""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from integrations.telemetry import files
from integrations.telemetry.scrape import Collector


@login_not_required
@never_cache
@require_GET
def metrics(request):
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Metrics are off: set METRICS_TOKEN to serve them.")
    given = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(given, f"Bearer {token}".encode()):
        response = HttpResponse(
            "A bearer token is required.\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def _registry() -> CollectorRegistry:
    """Every worker's counts (from their files) under gunicorn, this process's otherwise;
    and the series read at the scrape."""
    registry = CollectorRegistry()
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    registry.register(_Workers(path) if path else _Process())
    registry.register(Collector())
    return registry


class _Workers:
    """Every worker's counts, read from their files while no ended worker's counts are
    being folded into the archive (files.py)."""

    def __init__(self, path: str):
        self.path = path

    def collect(self):
        with files.locked(self.path):
            return MultiProcessCollector(None, self.path).collect()


class _Process:
    """The default registry's series (this process's counts), inside a fresh registry."""

    def collect(self):
        return REGISTRY.collect()
