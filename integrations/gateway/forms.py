"""The form for a new gateway key; keys.create writes it."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from integrations.gateway import keys
from integrations.models import CustomModel, Route
from integrations.team.roles import is_admin


class GatewayKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="The app that will use it, e.g. Support bot.")
    owner = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(), help_text="Sees the key's usage."
    )
    all_models = forms.BooleanField(
        label="All enabled models and routes", required=False, initial=True,
        help_text="Untick to pick the models and routes it may call.",
    )  # fmt: skip
    allowed = forms.ModelMultipleChoiceField(
        label="Models it may call",
        queryset=CustomModel.objects.none(),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 6}),
    )
    routes = forms.ModelMultipleChoiceField(
        label="Routes it may call",
        queryset=Route.objects.none(),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 4}),
    )
    rpm = forms.IntegerField(
        label="Requests per minute", required=False, min_value=1, max_value=keys.MAX_PER_MINUTE
    )
    tpm = forms.IntegerField(
        label="Tokens per minute", required=False, min_value=1, max_value=keys.MAX_PER_MINUTE
    )
    monthly_budget = forms.DecimalField(
        label="Monthly budget (USD)", required=False, min_value=0, max_value=keys.MAX_BUDGET,
        decimal_places=4, help_text="Priced from the models' prices. Blank: no budget.",
    )  # fmt: skip
    expires_in_days = forms.IntegerField(
        label="Expires in (days)", required=False, min_value=1, max_value=keys.MAX_DAYS,
        help_text="Blank: never.",
    )  # fmt: skip
    store_prompts = forms.BooleanField(
        label="Store prompts with usage", required=False,
        help_text="Off by default: usage rows then hold counts, never text.",
    )  # fmt: skip

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        people = get_user_model().objects.filter(is_active=True).order_by("username")
        # An Editor makes keys for themselves; an Admin for anyone.
        self.fields["owner"].queryset = people if is_admin(user) else people.filter(pk=user.pk)
        self.fields["owner"].initial = user.pk
        self.fields["allowed"].queryset = CustomModel.objects.select_related(
            "integration"
        ).order_by("integration__name", "name")
        self.fields["routes"].queryset = Route.objects.order_by("name")

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("all_models") and not (cleaned.get("allowed") or cleaned.get("routes")):
            self.add_error(
                "allowed", "Pick the models or routes it may call, or tick All enabled models."
            )
        return cleaned

    def create(self, request):
        data = self.cleaned_data
        days = data.get("expires_in_days")
        return keys.create(
            data["owner"],
            data["name"],
            allowed=None if data["all_models"] else list(data["allowed"]),
            routes=list(data.get("routes") or []),
            request=request,
            rpm=data.get("rpm"),
            tpm=data.get("tpm"),
            monthly_budget=data.get("monthly_budget"),
            expires_at=timezone.now() + timedelta(days=days) if days else None,
            store_prompts=data.get("store_prompts", False),
        )
