from django.urls import path

from sandbox import (
    dataset_views,
    embeddings,
    experiment_views,
    prompt_views,
    stream_views,
    views,
)

urlpatterns = [
    path("", views.sandbox, name="sandbox"),
    path("column", views.column, name="sandbox-column"),
    path("run", views.run, name="sandbox-run-now"),
    path("stream", stream_views.stream, name="sandbox-stream"),
    path("stop", stream_views.stop, name="sandbox-stop"),
    path("embeddings", embeddings.embeddings, name="sandbox-embeddings"),
    path("history/", views.history, name="sandbox-history"),
    path("runs/<uuid:pk>/", views.run_detail, name="sandbox-run"),
    path("runs/<uuid:pk>/rerun", views.rerun, name="sandbox-rerun"),
    path("prompts/save", views.prompt_save, name="sandbox-prompt-save"),
    path("prompts/<uuid:pk>/delete", views.prompt_delete, name="sandbox-prompt-delete"),
    path("prompts/<uuid:pk>/", prompt_views.prompt_detail, name="prompt-detail"),
    path("prompts/<uuid:pk>/label", prompt_views.prompt_label, name="prompt-label"),
    # Evaluation
    path("datasets/", dataset_views.dataset_list, name="datasets"),
    path("datasets/upload", dataset_views.dataset_upload, name="dataset-upload"),
    path("datasets/<uuid:pk>/", dataset_views.dataset_detail, name="dataset-detail"),
    path("datasets/<uuid:pk>/edit", dataset_views.dataset_edit, name="dataset-edit"),
    path("datasets/<uuid:pk>/export", dataset_views.dataset_export, name="dataset-export"),
    path("datasets/add-run", dataset_views.dataset_add_run, name="dataset-add-run"),
    path("experiments/", experiment_views.experiment_list, name="experiments"),
    path("experiments/new", experiment_views.experiment_new, name="experiment-new"),
    path("experiments/<uuid:pk>/", experiment_views.experiment_detail, name="experiment-detail"),
    path(
        "experiments/<uuid:pk>/cancel", experiment_views.experiment_cancel, name="experiment-cancel"
    ),
    path(
        "experiments/<uuid:pk>/export", experiment_views.experiment_export, name="experiment-export"
    ),
    path(
        "experiments/<uuid:pk>/compare",
        experiment_views.experiment_compare,
        name="experiment-compare",
    ),
    path(
        "experiments/<uuid:pk>/review", experiment_views.experiment_review, name="experiment-review"
    ),
]
