from django.urls import path

from integrations.alerts import views as alerts
from integrations.views import auth_profiles, catalog, connections, detail, previews, routes

urlpatterns = [
    path("", catalog.catalog, name="home"),
    path("models/<uuid:pk>/test", catalog.model_test, name="model-test"),
    path("models/<uuid:pk>/toggle", catalog.model_toggle, name="model-toggle"),
    path("models/<uuid:pk>/edit", connections.model_edit, name="model-edit"),
    path("models/<uuid:pk>/delete", detail.model_delete, name="model-delete"),
    path("integrations/new", connections.integration_add, name="integration-add"),
    path("integrations/preview-url", previews.endpoint_preview, name="endpoint-preview"),
    path("integrations/<uuid:pk>/", detail.integration_detail, name="integration-detail"),
    path("integrations/<uuid:pk>/edit", connections.integration_edit, name="integration-edit"),
    path("integrations/<uuid:pk>/delete", detail.integration_delete, name="integration-delete"),
    path("integrations/<uuid:pk>/models/new", connections.model_add, name="model-add"),
    path("integrations/<uuid:pk>/models/fetch", previews.fetch_models, name="fetch-models"),
    path(
        "integrations/<uuid:pk>/models/add-fetched",
        connections.add_fetched_models,
        name="fetch-models-add",
    ),
    path("tests/<uuid:pk>/", detail.connection_test_detail, name="connection-test"),
    path("alerts/", alerts.alerts, name="alerts"),
    path("alerts/<uuid:pk>/edit", alerts.rule_edit, name="alert-edit"),
    path("alerts/<uuid:pk>/delete", alerts.rule_delete, name="alert-delete"),
    path("alerts/<uuid:pk>/try", alerts.rule_try, name="alert-try"),
    path("routes/", routes.route_list, name="routes"),
    path("routes/new", routes.route_edit, name="route-add"),
    path("routes/<uuid:pk>/", routes.route_detail, name="route-detail"),
    path("routes/<uuid:pk>/edit", routes.route_edit, name="route-edit"),
    path("routes/<uuid:pk>/delete", routes.route_delete, name="route-delete"),
    path("auth-profiles/", auth_profiles.profile_list, name="auth-profiles"),
    path("auth-profiles/new", auth_profiles.profile_edit, name="auth-profile-add"),
    path("auth-profiles/<uuid:pk>/edit", auth_profiles.profile_edit, name="auth-profile-edit"),
    path(
        "auth-profiles/<uuid:pk>/delete", auth_profiles.profile_delete, name="auth-profile-delete"
    ),
]
