"""Auth profiles: list, create, edit, delete. Secrets are never rendered back.

Editing how a profile authenticates changes every integration that uses it, so the
new credentials are tested against each enabled model using the profile before
anything is saved. If one fails, nothing is saved unless the user chooses to save
anyway and disable the failing models.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from integrations import writes
from integrations.forms import AuthProfileForm
from integrations.models import AuthProfile
from integrations.team.roles import can_edit, editor_required
from integrations.views.helpers import go


@require_GET
def profile_list(request):
    profiles = (
        AuthProfile.objects.order_by("name")
        .select_related("stored_secret")
        .prefetch_related("integrations")
    )
    rows = [
        {
            "profile": p,
            "secret": p.masked_secret,
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
    form = AuthProfileForm(request.POST or None, instance=profile, user=request.user)
    ctx = {"form": form, "profile": profile, "is_new": pk is None}
    if request.method != "POST" or not form.is_valid():
        return render(request, "integrations/auth_profile_form.html", ctx)
    try:
        saved = writes.save_profile(
            form.instance,
            request=request,
            disable_failing=request.POST.get("action") == "save_disable",
        )
    except writes.Refused as exc:
        if not exc.failing:
            form.add_error(None, exc.message)
        ctx["failing"] = exc.failing
        return render(request, "integrations/auth_profile_form.html", ctx)
    if saved.disabled:
        names = ", ".join(str(m) for m in saved.disabled)
        messages.error(
            request,
            f"Saved; these models failed with the new credentials and were disabled: {names}.",
        )
    elif saved.tested:
        messages.success(request, f"The new credentials passed on {len(saved.tested)} model(s).")
    messages.success(request, f"Auth profile {profile.name} saved.")
    return go(request, reverse("auth-profiles"))


@require_http_methods(["GET", "POST"])
@editor_required
def profile_delete(request, pk):
    profile = get_object_or_404(AuthProfile, pk=pk)
    used_by = list(profile.integrations.order_by("name"))
    if request.method == "POST" and not writes.delete_profile(profile, request):
        messages.success(request, f"Auth profile {profile.name} deleted.")
        return go(request, reverse("auth-profiles"))
    if request.method == "POST":
        names = ", ".join(i.name for i in used_by)
        messages.error(request, f"{profile.name} is used by {names}; it was not deleted.")
        return redirect("auth-profile-delete", pk=pk)
    ctx = {"profile": profile, "used_by": used_by}
    return render(request, "integrations/auth_profile_delete.html", ctx)
