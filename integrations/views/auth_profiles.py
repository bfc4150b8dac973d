"""Auth profiles: list, create, edit, delete. Secrets are never rendered back."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from integrations.forms import AuthProfileForm
from integrations.models import AuthProfile
from integrations.roles import can_edit, editor_required
from integrations.secrets import mask
from integrations.views.helpers import go


@require_GET
def profile_list(request):
    profiles = AuthProfile.objects.order_by("name").prefetch_related("integrations")
    rows = [
        {
            "profile": p,
            "secret": mask(p.token or p.password or p.client_secret),
            "used_by": list(p.integrations.all()),
        }
        for p in profiles
    ]
    return render(
        request,
        "integrations/auth_profiles.html",
        {"rows": rows, "can_edit": can_edit(request.user)},
    )


@require_http_methods(["GET", "POST"])
@editor_required
def profile_edit(request, pk=None):
    profile = get_object_or_404(AuthProfile, pk=pk) if pk else AuthProfile(created_by=request.user)
    form = AuthProfileForm(request.POST or None, instance=profile)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Auth profile {profile.name} saved.")
        return go(request, reverse("auth-profiles"))
    return render(
        request, "integrations/auth_profile_form.html", {"form": form, "profile": profile}
    )


@require_http_methods(["GET", "POST"])
@editor_required
def profile_delete(request, pk):
    profile = get_object_or_404(AuthProfile, pk=pk)
    used_by = list(profile.integrations.order_by("name"))
    if request.method == "POST" and not used_by:
        profile.delete()
        messages.success(request, f"Auth profile {profile.name} deleted.")
        return go(request, reverse("auth-profiles"))
    if request.method == "POST":
        messages.error(
            request,
            f"{profile.name} is used by {', '.join(i.name for i in used_by)}; it was not deleted.",
        )
        return redirect("auth-profile-delete", pk=pk)
    return render(
        request, "integrations/auth_profile_delete.html", {"profile": profile, "used_by": used_by}
    )
