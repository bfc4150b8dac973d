"""The form for a gateway key, new or edited; keys.create and keys.update write it."""

from __future__ import annotations

from datetime import datetime, time, timedelta

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

    expires_on = forms.DateField(
        label="Expires on", required=False, widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Blank: never.",
    )  # fmt: skip

    def __init__(self, *args, user, key=None, **kwargs):
        self.key = key
        bound = bool(args and args[0] is not None) or kwargs.get("data") is not None
        if key is not None and not bound and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": key.name, "owner": key.owner_id, "all_models": key.all_models,
                "allowed": list(key.allowed.all()), "routes": list(key.routes.all()),
                "rpm": key.rpm, "tpm": key.tpm, "monthly_budget": key.monthly_budget,
                "store_prompts": key.store_prompts,
                "expires_on": timezone.localtime(key.expires_at).date() if key.expires_at else None,
            }  # fmt: skip
        super().__init__(*args, **kwargs)
        # A new key expires in some days; an edited one on a date (blank keeps none).
        del self.fields["expires_on" if key is None else "expires_in_days"]
        people = get_user_model().objects.filter(is_active=True).order_by("username")
        # An Editor makes keys for themselves; an Admin for anyone.
        self.fields["owner"].queryset = people if is_admin(user) else people.filter(pk=user.pk)
        if key is None:
            self.fields["owner"].initial = user.pk
        elif not is_admin(user):
            self.fields["owner"].queryset = people.filter(pk=key.owner_id)
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

    def update(self, request):
        data = self.cleaned_data
        day = data.get("expires_on")
        expires = None
        if day is not None:
            expires = timezone.make_aware(datetime.combine(day, time.max))
        return keys.update(
            self.key, request,
            allowed=None if data["all_models"] else list(data["allowed"]),
            routes=list(data.get("routes") or []),
            name=data["name"], owner=data["owner"], rpm=data.get("rpm"), tpm=data.get("tpm"),
            monthly_budget=data.get("monthly_budget"), expires_at=expires,
            store_prompts=data.get("store_prompts", False),
        )  # fmt: skip
