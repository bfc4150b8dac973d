from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config.views import healthz
from integrations import demo

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("demo/v1/chat/completions", demo.chat_completions, name="demo-chat"),
    path("demo/v1/models", demo.models, name="demo-models"),
    path("sandbox/", include("sandbox.urls")),
    path("", include("integrations.urls")),
]
