from django.urls import path

from sandbox import embeddings, views

urlpatterns = [
    path("", views.sandbox, name="sandbox"),
    path("column", views.column, name="sandbox-column"),
    path("run", views.run, name="sandbox-run-now"),
    path("stream", views.stream, name="sandbox-stream"),
    path("embeddings", embeddings.embeddings, name="sandbox-embeddings"),
    path("history/", views.history, name="sandbox-history"),
    path("runs/<uuid:pk>/", views.run_detail, name="sandbox-run"),
    path("runs/<uuid:pk>/rerun", views.rerun, name="sandbox-rerun"),
    path("prompts/save", views.prompt_save, name="sandbox-prompt-save"),
    path("prompts/<uuid:pk>/delete", views.prompt_delete, name="sandbox-prompt-delete"),
]
