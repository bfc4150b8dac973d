from django.urls import path

from sandbox import views

urlpatterns = [
    path("", views.sandbox, name="sandbox"),
    path("run", views.run, name="sandbox-run-now"),
    path("stream", views.stream, name="sandbox-stream"),
    path("history/", views.history, name="sandbox-history"),
    path("runs/<uuid:pk>/", views.run_detail, name="sandbox-run"),
    path("runs/<uuid:pk>/rerun", views.rerun, name="sandbox-rerun"),
    path("runs/<uuid:pk>/markdown", views.run_markdown, name="sandbox-run-markdown"),
]
