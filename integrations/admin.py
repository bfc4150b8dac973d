"""Operators' view: secrets write-only and masked, a "Test connection" action."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html

from integrations import names, services, writes
from integrations.llm import inputs
from integrations.models import (
    AlertDelivery,
    AlertIncident,
    AlertRule,
    ApiToken,
    AuditEvent,
    AuthProfile,
    ConnectionTest,
    CustomModel,
    Integration,
    IntegrationHeader,
    StoredSecret,
)
from integrations.secrets import mask
from integrations.team.accounts import ThrottledAdminAuthenticationForm

# The admin's login shares the console's lockout (5 failures lock both doors).
admin.site.login_form = ThrottledAdminAuthenticationForm


def console_link(url: str, label: str = "Change it in the console") -> str:
    return format_html('<a href="{}">{}</a>', url, label)


class ConsoleManaged:
    """Configuration is changed only through the console's write path, which tests a
    change before saving it and binds secrets to where they were typed. Here those
    fields are read-only, secrets masked, with a link to the console page."""

    def has_add_permission(self, request, obj=None):
        return False


class NamedForm(forms.ModelForm):
    """A rename is checked by the one name rule, next to the field (integrations.names)."""

    def clean_name(self):
        name = names.clean(self.cleaned_data["name"])
        instance = self.instance
        scope = instance.integration if isinstance(instance, CustomModel) else None
        if problem := names.taken(type(instance), name, exclude=instance, integration=scope):
            raise ValidationError(problem)
        return name


class WritePathAdmin(admin.ModelAdmin):
    """Saves and deletes made in the Django admin go through integrations.writes, like
    every other entry point: information fields directly, enabling after a passing test."""

    form = NamedForm

    def save_model(self, request, obj, form, change):
        stored = type(obj).objects.get(pk=obj.pk)  # `obj` holds the posted values
        info = writes.INFO_FIELDS[type(obj)] & set(form.changed_data)
        fields = {name: form.cleaned_data[name] for name in info}
        writes.update_info(stored, request, detail="in the Django admin", **fields)
        if "enabled" in form.changed_data:
            self.set_enabled(request, stored, form.cleaned_data["enabled"])
        obj.refresh_from_db()

    def set_enabled(self, request, obj, enabled: bool) -> None:
        raise NotImplementedError

    def delete_model(self, request, obj):
        _delete(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            _delete(request, obj)


def _delete(request, obj) -> None:
    if isinstance(obj, Integration):
        writes.delete_integration(obj, request)
    elif isinstance(obj, CustomModel):
        writes.delete_model(obj, request)
    elif isinstance(obj, AuthProfile):
        used_by = writes.delete_profile(obj, request)
        if used_by:
            messages.error(request, f"{obj} is used by {', '.join(used_by)}; it was not deleted.")
    elif isinstance(obj, StoredSecret):
        users = writes.delete_secret(obj, request)
        if users:
            messages.error(request, f"{obj} is in use by {'; '.join(users)}; it was not deleted.")


def _test_models(request, models) -> None:
    passed = failed = 0
    for model in models:
        result, _ = writes.test_model(model, request)
        if result.ok:
            passed += 1
        else:
            failed += 1
            messages.error(request, f"{model}: {result.error.message} {result.error.hint}")
    if passed:
        messages.success(request, f"{passed} model(s) passed the connection test.")


@admin.register(AuthProfile)
class AuthProfileAdmin(ConsoleManaged, WritePathAdmin):
    list_display = ["name", "kind", "masked_token", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["name"]
    fields = ["name", "kind", "masked_token", "header_name", "query_param", "body_path",
              "username", "token_url", "client_id", "scope", "bound_origins", "edit_in_console",
              "created_by", "created_at", "updated_at"]  # fmt: skip
    readonly_fields = [f for f in fields if f != "name"]

    @admin.display(description="Secret")
    def masked_token(self, obj: AuthProfile) -> str:
        return obj.masked_secret or "—"

    @admin.display(description="Credentials")
    def edit_in_console(self, obj: AuthProfile) -> str:
        return console_link(reverse("auth-profile-edit", args=[obj.pk])) if obj.pk else ""


class HeaderInline(admin.TabularInline):
    model = IntegrationHeader
    extra = 0
    can_delete = False
    fields = ["name", "shown", "secret"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="Value")
    def shown(self, obj: IntegrationHeader) -> str:
        if not obj.pk:
            return ""
        return mask(obj.value) if obj.secret else str(obj.value)


class ModelInline(admin.TabularInline):
    model = CustomModel
    extra = 0
    can_delete = False
    fields = ["name", "model_id", "enabled", "last_test_status", "last_tested_at"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Integration)
class IntegrationAdmin(ConsoleManaged, WritePathAdmin):
    list_display = ["name", "protocol", "endpoint", "auth_profile", "enabled", "updated_at"]
    list_filter = ["protocol", "enabled"]
    search_fields = ["name", "endpoint"]
    list_select_related = ["auth_profile"]
    fields = ["name", "description", "enabled", "endpoint", "protocol", "api_version",
              "deployment", "auth_profile", "proxy", "timeout_seconds", "verify_tls",
              "request_template", "edit_in_console", "created_by", "created_at", "updated_at"]  # fmt: skip
    readonly_fields = [f for f in fields if f not in ("name", "description", "enabled")]
    inlines = [HeaderInline, ModelInline]
    actions = ["test_connection"]

    @admin.display(description="Proxy URL")
    def proxy(self, obj: Integration) -> str:
        return inputs.without_credentials(services.reveal_or_blank(obj.proxy_url)) or "—"

    @admin.display(description="Endpoint, auth and headers")
    def edit_in_console(self, obj: Integration) -> str:
        return console_link(reverse("integration-edit", args=[obj.pk])) if obj.pk else ""

    def set_enabled(self, request, obj, enabled: bool) -> None:
        failed = writes.set_integration_enabled(obj, enabled, request)
        if failed is not None:
            _refused(request, *failed)

    @admin.action(description="Test connection (every model)", permissions=["change"])
    def test_connection(self, request, queryset):
        models = CustomModel.objects.filter(integration__in=queryset).select_related(
            "integration__auth_profile__stored_secret"
        )
        _test_models(request, models)


def _refused(request, model, result) -> None:
    messages.error(
        request,
        f"Not enabled: {model} failed its test. {result.error.message} {result.error.hint}",
    )


@admin.register(CustomModel)
class CustomModelAdmin(ConsoleManaged, WritePathAdmin):
    list_display = [
        "name",
        "model_id",
        "integration",
        "enabled",
        "last_test_status",
        "last_test_latency_ms",
        "last_tested_at",
    ]
    list_filter = ["enabled", "last_test_status", "integration"]
    search_fields = ["name", "model_id", "integration__name"]
    list_select_related = ["integration"]
    fields = ["integration", "name", "description", "enabled", "model_id", "max_tokens",
              "temperature", "test_model_parameters", "request_template",
              "price_input_per_mtok", "price_output_per_mtok", "context_window", "last_test_status",
              "last_test_latency_ms", "last_tested_at", "edit_in_console", "created_by",
              "created_at", "updated_at"]  # fmt: skip
    readonly_fields = [
        f
        for f in fields
        if f
        not in (
            "name",
            "description",
            "enabled",
            "price_input_per_mtok",
            "price_output_per_mtok",
            "context_window",
        )  # fmt: skip
    ]
    actions = ["test_connection"]

    @admin.display(description="Model ID, parameters and body")
    def edit_in_console(self, obj: CustomModel) -> str:
        return console_link(reverse("model-edit", args=[obj.pk])) if obj.pk else ""

    def set_enabled(self, request, obj, enabled: bool) -> None:
        refused = writes.set_enabled(obj, enabled, request)
        if refused is not None:
            _refused(request, obj, refused)

    @admin.action(description="Test connection", permissions=["change"])
    def test_connection(self, request, queryset):
        _test_models(request, queryset.select_related("integration__auth_profile__stored_secret"))


@admin.register(ConnectionTest)
class ConnectionTestAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "integration",
        "model",
        "user",
        "ok",
        "status_code",
        "latency_ms",
        "error_kind",
    ]
    list_filter = ["ok", "error_kind"]
    list_select_related = ["integration", "model", "user"]
    search_fields = ["integration__name", "model__name"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Audit rows can be read here, never added, changed or deleted."""

    list_display = ["created_at", "username", "action", "object_type", "object_repr", "ip"]
    list_filter = ["action", "object_type"]
    search_fields = ["username", "object_repr", "object_id", "detail"]
    date_hierarchy = "created_at"

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "user",
        "prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_select_related = ["user"]
    exclude = ["digest"]


@admin.register(StoredSecret)
class StoredSecretAdmin(ReadOnlyAdmin):
    list_display = ["name", "secret_type", "masked", "created_at"]
    exclude = ["value"]

    def delete_model(self, request, obj):
        _delete(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            _delete(request, obj)

    @admin.display(description="Value")
    def masked(self, obj: StoredSecret) -> str:
        return mask(obj.value)


@admin.register(AlertRule)
class AlertRuleAdmin(ReadOnlyAdmin):
    """Rules are written on the Alerts page (audited there); here they can be read."""

    list_display = ["name", "kind", "enabled", "created_by", "created_at"]
    list_filter = ["kind", "enabled"]
    exclude = ["webhook_url"]


@admin.register(AlertIncident)
class AlertIncidentAdmin(ReadOnlyAdmin):
    list_display = ["title", "rule", "opened_at", "resolved_at", "notified"]
    list_filter = ["rule"]
    date_hierarchy = "opened_at"


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "event", "channel", "target", "ok", "attempts", "error"]
    list_filter = ["channel", "ok", "event"]
