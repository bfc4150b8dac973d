"""Team pages: users and roles, the audit trail, export and import (Admins); API tokens (everyone)."""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.tokens import default_token_generator
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations import audit, transfer
from integrations.models import ApiToken, AuditAction, AuditEvent
from integrations.team import tokens
from integrations.team.roles import ROLES, admin_required, set_role

User = get_user_model()


class InviteForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=[(r, r) for r in ROLES], initial="Member")

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("This username is taken.")
        User.username_validator(username)
        return username


def _set_password_link(request, user) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return request.build_absolute_uri(reverse("password_reset_confirm", args=[uid, token]))


@require_http_methods(["GET", "POST"])
@admin_required
def users(request):
    form = InviteForm(request.POST or None)
    ctx: dict = {"form": form}
    if request.method == "POST" and form.is_valid():
        user = User.objects.create_user(form.cleaned_data["username"], form.cleaned_data["email"])
        user.set_unusable_password()
        user.save()
        set_role(user, form.cleaned_data["role"])
        audit.record(
            request,
            AuditAction.USER_INVITE,
            user,
            {"role": [None, form.cleaned_data["role"]]},
            object_type="user",
        )
        ctx["invite_link"] = _set_password_link(request, user)
        ctx["invited"] = user
        ctx["form"] = InviteForm()
    people = User.objects.order_by("username").prefetch_related("groups")
    ctx["rows"] = [{"user": u, "role": _stored_role(u)} for u in people]
    ctx["roles"] = ROLES
    return render(request, "team/users.html", ctx)


def _stored_role(user) -> str:
    if user.is_superuser:
        return "Admin"
    names = {g.name for g in user.groups.all()}
    return next((r for r in ROLES if r in names), "Member")


@require_POST
@admin_required
def user_role(request, username):
    user = get_object_or_404(User, username=username)
    role = request.POST.get("role", "")
    if role not in ROLES:
        messages.error(request, "Choose Admin, Editor or Member.")
    elif user == request.user:
        messages.error(request, "You cannot change your own role; ask another Admin.")
    elif user.is_superuser:
        messages.error(
            request, f"{user} is a superuser and always an Admin; change that in the Django admin."
        )
    else:
        old = _stored_role(user)
        set_role(user, role)
        audit.record(
            request, AuditAction.ROLE_CHANGE, user, {"role": [old, role]}, object_type="user"
        )
        messages.success(request, f"{user} is now {role}.")
    return redirect("team-users")


@require_POST
@admin_required
def user_active(request, username):
    user = get_object_or_404(User, username=username)
    if user == request.user:
        messages.error(request, "You cannot deactivate yourself.")
        return redirect("team-users")
    user.is_active = not user.is_active
    user.save(update_fields=["is_active"])
    action = AuditAction.USER_REACTIVATE if user.is_active else AuditAction.USER_DEACTIVATE
    audit.record(request, action, user, object_type="user")
    verb = (
        "reactivated"
        if user.is_active
        else "deactivated: their sessions and API tokens stop working now"
    )
    messages.success(request, f"{user} {verb}.")
    return redirect("team-users")


@require_POST
@admin_required
def user_link(request, username):
    """A new one-time set-password link, e.g. for an invite that expired."""
    user = get_object_or_404(User, username=username, is_active=True)
    ctx = {"invite_link": _set_password_link(request, user), "invited": user}
    audit.record(
        request, AuditAction.UPDATE, user, detail="set-password link issued", object_type="user"
    )
    return render(request, "team/link.html", ctx)


# --- API tokens (each user their own) ---------------------------------------------------------


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. CI pipeline.")
    expires_in_days = forms.IntegerField(
        label="Expires in (days)",
        required=False,
        min_value=1,
        max_value=3650,
        help_text="Blank: never.",
    )


@require_http_methods(["GET", "POST"])
def api_tokens(request):
    form = TokenForm(request.POST or None)
    ctx: dict = {"form": form}
    if request.method == "POST" and form.is_valid():
        token, raw = tokens.create(
            request.user, form.cleaned_data["name"], form.cleaned_data["expires_in_days"]
        )
        audit.record(
            request,
            AuditAction.TOKEN_CREATE,
            token,
            detail=f"expires {token.expires_at or 'never'}",
        )
        ctx.update(new_token=raw, form=TokenForm())
    ctx["tokens"] = ApiToken.objects.filter(user=request.user)
    ctx["now"] = timezone.now()
    response = render(request, "team/tokens.html", ctx)
    response["Cache-Control"] = "no-store"  # the new token is on this page once
    return response


@require_POST
def api_token_revoke(request, pk):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit.record(request, AuditAction.TOKEN_REVOKE, token)
        messages.success(request, f"Token {token.name} revoked.")
    return redirect("api-tokens")


# --- audit ------------------------------------------------------------------------------------


@require_GET
@admin_required
def audit_log(request):
    events = AuditEvent.objects.all()
    filters = {k: request.GET.get(k, "").strip() for k in ("user", "object", "action")}
    if filters["user"]:
        events = events.filter(username=filters["user"])
    if filters["object"]:
        events = events.filter(object_type=filters["object"])
    if filters["action"]:
        events = events.filter(action=filters["action"])
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    object_types = _type_names(
        AuditEvent.objects.order_by().values_list("object_type", flat=True).distinct()
    )
    named = dict(object_types)
    for event in page.object_list:  # "Custom model", not `custommodel`
        event.type_name = named.get(event.object_type, event.object_type)
    ctx = {
        "page": page,
        "filters": filters,
        "actions": AuditAction.choices,
        "object_types": object_types,
    }
    return render(request, "team/audit.html", ctx)


def _type_names(types) -> list[tuple[str, str]]:
    """(stored type, what a person calls it): `custommodel` is a "Custom model"."""
    from django.apps import apps

    named = {m._meta.model_name: str(m._meta.verbose_name).capitalize() for m in apps.get_models()}
    return sorted(((t, named.get(t, t)) for t in types if t), key=lambda pair: pair[1])


# --- export and import ------------------------------------------------------------------------------


class ExportForm(forms.Form):
    include_secrets = forms.BooleanField(required=False, label="Include secrets (encrypted)")
    passphrase = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput, min_length=8
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("include_secrets") and not cleaned.get("passphrase"):
            self.add_error(
                "passphrase", "A passphrase of at least 8 characters protects the secrets."
            )
        return cleaned


class ImportForm(forms.Form):
    file = forms.FileField(label="Export file (JSON)")
    passphrase = forms.CharField(required=False, strip=False, widget=forms.PasswordInput)


@require_http_methods(["GET", "POST"])
@admin_required
def export_import(request):
    export_form = ExportForm(request.POST if request.POST.get("action") == "export" else None)
    import_form = ImportForm(
        request.POST if request.POST.get("action") == "import" else None,
        request.FILES if request.POST.get("action") == "import" else None,
    )
    ctx: dict = {"export_form": export_form, "import_form": import_form}
    if (
        request.method == "POST"
        and request.POST.get("action") == "export"
        and export_form.is_valid()
    ):
        data = transfer.export(
            export_form.cleaned_data["include_secrets"], export_form.cleaned_data["passphrase"]
        )
        audit.record(
            request, AuditAction.EXPORT, detail=f"secrets {data['secrets']}", object_type="export"
        )
        response = HttpResponse(json.dumps(data, indent=2), content_type="application/json")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="llms-{stamp}.json"'
        return response
    if (
        request.method == "POST"
        and request.POST.get("action") == "import"
        and import_form.is_valid()
    ):
        upload = import_form.cleaned_data["file"]
        try:
            if upload.size > 10 * 1024 * 1024:
                raise transfer.TransferError("The file is larger than 10 MiB.")
            data = json.loads(upload.read())
            report = transfer.import_data(
                data, import_form.cleaned_data["passphrase"], user=request.user
            )
        except (ValueError, KeyError, TypeError) as exc:
            import_form.add_error("file", f"Not a valid export file: {exc}")
        except transfer.TransferError as exc:
            import_form.add_error("file", str(exc))
        else:
            ctx["report"] = report.lines()
            audit.record(
                request,
                AuditAction.IMPORT,
                detail="; ".join(report.lines())[:500],
                object_type="import",
            )
    return render(request, "team/export_import.html", ctx)


@login_not_required
def password_reset(request):
    """Reset by email where mail is set up; otherwise say how to get a set-password link."""
    if not settings.PASSWORD_RESET_BY_EMAIL:
        return render(request, "registration/password_reset_unavailable.html")
    return auth_views.PasswordResetView.as_view()(request)
