"""The alert rule form; `save_rule` is the one place a rule is written (audited)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

from integrations import audit
from integrations.models import AlertKind, AlertRule, AuditAction, CustomModel, GatewayKey
from integrations.secrets import mask

NEEDS_AMOUNT = {AlertKind.TEAM_BUDGET}
NEEDS_THRESHOLD = {AlertKind.ERROR_RATE, AlertKind.LATENCY}
FOR_KEYS = {AlertKind.KEY_BUDGET}
FOR_MODELS = {AlertKind.CHECK_FAILED, AlertKind.COOLDOWN, AlertKind.ERROR_RATE, AlertKind.LATENCY}


class AlertRuleForm(forms.ModelForm):
    webhook_url = forms.CharField(
        label="Webhook URL", required=False, max_length=2000,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="A Slack or Teams incoming webhook. Stored encrypted.",
    )  # fmt: skip
    clear_webhook = forms.BooleanField(label="Remove the webhook", required=False)

    class Meta:
        model = AlertRule
        fields = ["name", "kind", "key", "model", "amount", "threshold", "min_calls", "emails",
                  "webhook_url", "enabled"]  # fmt: skip
        widgets = {"emails": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["key"].queryset = GatewayKey.objects.filter(
            revoked_at__isnull=True, monthly_budget__isnull=False
        ).order_by("name")
        self.fields["key"].help_text = "For a key's budget. Blank: every key that has a budget."
        self.fields["model"].queryset = CustomModel.objects.filter(enabled=True).select_related(
            "integration"
        )
        self.fields["model"].label_from_instance = lambda m: f"{m.integration.name} / {m.name}"
        # Each field shows only for the kinds it is about (static/js/app.js).
        for name, kinds in (("key", FOR_KEYS), ("model", FOR_MODELS), ("amount", NEEDS_AMOUNT),
                            ("threshold", NEEDS_THRESHOLD), ("min_calls", NEEDS_THRESHOLD)):  # fmt: skip
            self.fields[name].show_when = "kind=" + ",".join(sorted(kinds))
        if not self.instance._state.adding and self.instance.webhook_url:
            self.fields[
                "webhook_url"
            ].help_text = f"Set: {mask(self.instance.webhook_url)}. Leave blank to keep it."
        else:
            self.fields.pop("clear_webhook")

    def clean_emails(self):
        addresses = [a.strip() for a in self.cleaned_data["emails"].replace(",", "\n").splitlines()]
        addresses = [a for a in addresses if a]
        check = EmailValidator()
        for address in addresses:
            try:
                check(address)
            except ValidationError:
                raise ValidationError(f"{address!r} is not an email address.") from None
        return "\n".join(addresses)

    def clean_webhook_url(self):
        url = self.cleaned_data["webhook_url"].strip()
        if not url:
            return "" if self.instance._state.adding else self.instance.webhook_url
        try:
            URLValidator(schemes=["https", "http"])(url)
        except ValidationError:
            raise ValidationError("Enter the webhook's full https:// URL.") from None
        return url

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if data.get("clear_webhook"):
            data["webhook_url"] = ""
        if kind in NEEDS_AMOUNT and not data.get("amount"):
            self.add_error("amount", "Give the team's monthly amount that the levels are of.")
        if kind in NEEDS_THRESHOLD and data.get("threshold") is None:
            unit = "a percentage" if kind == AlertKind.ERROR_RATE else "milliseconds"
            self.add_error("threshold", f"Give the threshold, in {unit}.")
        if kind == AlertKind.ERROR_RATE and (data.get("threshold") or 0) > 100:
            self.add_error("threshold", "An error rate is at most 100%.")
        if data.get("threshold") is not None and data["threshold"] < 0:
            self.add_error("threshold", "A threshold cannot be negative.")
        if kind not in FOR_KEYS and data.get("key"):
            self.add_error("key", "Only a key's budget rule is about one key.")
        if kind not in FOR_MODELS and data.get("model"):
            self.add_error("model", "This kind of rule is not about a model.")
        if not data.get("emails") and not data.get("webhook_url"):
            self.add_error("emails", "Give at least one recipient: email addresses or a webhook.")
        return data


def save_rule(form: AlertRuleForm, request) -> AlertRule:
    """Write a valid form's rule and audit it (a webhook change shows as 'changed')."""
    creating = form.instance._state.adding
    before = {} if creating else audit.snapshot(AlertRule.objects.get(pk=form.instance.pk))
    rule = form.save(commit=False)
    rule.webhook_url = form.cleaned_data.get("webhook_url", "")
    if creating:
        rule.created_by = request.user
    rule.save()
    changes = audit.diff(before, audit.snapshot(rule))
    audit.record(request, AuditAction.CREATE if creating else AuditAction.UPDATE, rule, changes)
    return rule


def delete_rule(rule: AlertRule, request) -> None:
    audit.record(request, AuditAction.DELETE, rule)
    rule.delete()
