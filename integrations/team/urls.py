from django.contrib.auth import views as auth_views
from django.urls import path

from integrations.team import views as team
from integrations.team.accounts import ThrottledAuthenticationForm

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            redirect_authenticated_user=True, authentication_form=ThrottledAuthenticationForm
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password-reset/", team.password_reset, name="password_reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("team/users/", team.users, name="team-users"),
    path("team/users/<str:username>/role", team.user_role, name="team-user-role"),
    path("team/users/<str:username>/active", team.user_active, name="team-user-active"),
    path("team/users/<str:username>/link", team.user_link, name="team-user-link"),
    path("team/audit/", team.audit_log, name="audit"),
    path("team/transfer/", team.export_import, name="export-import"),
    path("tokens/", team.api_tokens, name="api-tokens"),
    path("tokens/<uuid:pk>/revoke", team.api_token_revoke, name="api-token-revoke"),
]
