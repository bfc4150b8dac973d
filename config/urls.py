from django.contrib import admin
from django.urls import include, path

from config.api import api
from config.views import favicon, healthz
from integrations import demo
from integrations.telemetry.views import metrics

urlpatterns = [
    path("v1/", include("integrations.gateway.urls")),  # first: every gateway call resolves it
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("favicon.ico", favicon, name="favicon"),
    path("", include("integrations.team.urls")),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("", include("integrations.gateway.page_urls")),
    path("demo/v1/chat/completions", demo.chat_completions, name="demo-chat"),
    path("demo/v1/models", demo.models, name="demo-models"),
    path("sandbox/", include("sandbox.urls")),
    path("", include("integrations.urls")),
]
