from django.contrib.auth.decorators import login_not_required
from django.urls import path

from integrations.gateway import openapi, views

# Mounted at /v1/: what apps call.
urlpatterns = [
    path("chat/completions", views.chat_completions, name="gateway-chat"),
    path("messages", views.messages, name="gateway-messages"),
    path("messages/count_tokens", views.count_tokens, name="gateway-count-tokens"),
    path("responses", views.responses, name="gateway-responses"),
    path("responses/<str:response_id>", views.stored_response, name="gateway-response"),
    path("embeddings", views.embeddings, name="gateway-embeddings"),
    path("models", views.models, name="gateway-models"),
    path("models/<path:name>", views.model_detail, name="gateway-model"),
    path("openapi.json", login_not_required(openapi.document), name="gateway-openapi"),
]
