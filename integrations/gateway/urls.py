from django.urls import path

from integrations.gateway import views

# Mounted at /v1/: what apps call.
urlpatterns = [
    path("chat/completions", views.chat_completions, name="gateway-chat"),
    path("models", views.models, name="gateway-models"),
]
