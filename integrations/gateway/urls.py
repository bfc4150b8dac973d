from django.urls import path

from integrations.gateway import views

urlpatterns = [
    path("chat/completions", views.chat_completions, name="gateway-chat"),
    path("models", views.models, name="gateway-models"),
]
