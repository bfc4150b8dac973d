"""Operators' view: secrets write-only and masked, a "Test connection" action."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from integrations import audit, services
from integrations.llm.protocols import adapter_for
from integrations.models import (
    ApiToken,
    AuditAction,
    AuditEvent,
    AuthProfile,
    ConnectionTest,
    CustomModel,
    Integration,
    IntegrationHeader,
    StoredSecret,
)
from integrations.secrets import mask


class SecretFieldsForm(forms.ModelForm):
    """Secret fields render blank and keep the stored value when left blank."""

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.secret_fields:
            if name in self.fields:
                field = self.fields[name]
                field.widget = forms.PasswordInput(
                    render_value=False, attrs={"autocomplete": "off"}
                )
                field.required = False
                field.strip = False
                if self.instance.pk and getattr(self.instance, name):
                    field.help_text = (
                        f"Stored ({mask(getattr(self.instance, name))}). Leave blank to keep."
                    )

    def clean(self):
        cleaned = super().clean()
        for name in self.secret_fields:
            if name in cleaned and not cleaned[name] and self.instance.pk:
                cleaned[name] = getattr(self.instance, name)
        return cleaned


class AuthProfileForm(SecretFieldsForm):
    secret_fields = AuthProfile.SECRET_FIELDS

    class Meta:
        model = AuthProfile
        fields = "__all__"


class AuditedAdmin(admin.ModelAdmin):
    """Every change made in the Django admin lands in the audit trail too."""

    secret_fields: tuple[str, ...] = ()

    def save_model(self, request, obj, form, change):
        before = (
            audit.snapshot(type(obj).objects.get(pk=obj.pk), self.secret_fields) if change else {}
        )
        if not change and hasattr(obj, "created_by_id") and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        changes = audit.diff(before, audit.snapshot(obj, self.secret_fields))
        if changes or not change:
            action = AuditAction.UPDATE if change else AuditAction.CREATE
            audit.record(request, action, obj, changes, detail="in the Django admin")

    def delete_model(self, request, obj):
        audit.record(request, AuditAction.DELETE, obj, detail="in the Django admin")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            audit.record(request, AuditAction.DELETE, obj, detail="in the Django admin")
        super().delete_queryset(request, queryset)


def _test_models(request, models) -> None:
    passed = failed = 0
    for model in models:
        result, _ = services.test_model(model, request)
        if result.ok:
            passed += 1
        else:
            failed += 1
            messages.error(request, f"{model}: {result.error.message} {result.error.hint}")
    if passed:
        messages.success(request, f"{passed} model(s) passed the connection test.")


@admin.register(AuthProfile)
class AuthProfileAdmin(AuditedAdmin):
    form = AuthProfileForm
    secret_fields = AuthProfile.SECRET_FIELDS
    list_display = ["name", "kind", "masked_token", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["name"]
    readonly_fields = ["created_by", "created_at", "updated_at"]

    @admin.display(description="Secret")
    def masked_token(self, obj: AuthProfile) -> str:
        return obj.masked_secret or "—"


class HeaderForm(SecretFieldsForm):
    secret_fields = ("value",)

    class Meta:
        model = IntegrationHeader
        fields = ["name", "value", "secret"]


class HeaderInline(admin.TabularInline):
    model = IntegrationHeader
    form = HeaderForm
    extra = 0
    fields = ["name", "value", "secret", "shown"]
    readonly_fields = ["shown"]

    @admin.display(description="Stored value")
    def shown(self, obj: IntegrationHeader) -> str:
        if not obj.pk:
            return ""
        return mask(obj.value) if obj.secret else str(obj.value)


class IntegrationForm(forms.ModelForm):
    class Meta:
        model = Integration
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        endpoint, protocol = cleaned.get("endpoint"), cleaned.get("protocol")
        if endpoint and protocol:
            try:
                cleaned["endpoint"], _ = adapter_for(protocol).normalize(endpoint)
            except Exception as exc:
                raise ValidationError({"endpoint": str(exc)}) from exc
        return cleaned


class ModelInline(admin.TabularInline):
    model = CustomModel
    extra = 0
    fields = ["name", "model_id", "enabled", "last_test_status", "last_tested_at"]
    readonly_fields = ["last_test_status", "last_tested_at"]
    show_change_link = True


@admin.register(Integration)
class IntegrationAdmin(AuditedAdmin):
    form = IntegrationForm
    list_display = ["name", "protocol", "endpoint", "auth_profile", "enabled", "updated_at"]
    list_filter = ["protocol", "enabled"]
    search_fields = ["name", "endpoint"]
    list_select_related = ["auth_profile"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    inlines = [HeaderInline, ModelInline]
    actions = ["test_connection"]

    @admin.action(description="Test connection (every model)", permissions=["change"])
    def test_connection(self, request, queryset):
        models = CustomModel.objects.filter(integration__in=queryset).select_related(
            "integration__auth_profile"
        )
        _test_models(request, models)


@admin.register(CustomModel)
class CustomModelAdmin(AuditedAdmin):
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
    readonly_fields = [
        "last_test_status",
        "last_test_latency_ms",
        "last_tested_at",
        "created_by",
        "created_at",
        "updated_at",
    ]
    actions = ["test_connection"]

    @admin.action(description="Test connection", permissions=["change"])
    def test_connection(self, request, queryset):
        _test_models(request, queryset.select_related("integration__auth_profile"))


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

    @admin.display(description="Value")
    def masked(self, obj: StoredSecret) -> str:
        return mask(obj.value)
