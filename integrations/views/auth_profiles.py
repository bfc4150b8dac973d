"""Auth profiles: list, create, edit, delete. Secrets are never rendered back.

Editing how a profile authenticates changes every integration that uses it, so the
new credentials are tested against each enabled model using the profile before
anything is saved. If one fails, nothing is saved unless the user chooses to save
anyway and disable the failing models.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from django.contrib import messages
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from integrations import audit, services
from integrations.forms import AuthProfileForm
from integrations.llm import client
from integrations.llm.config import CallResult
from integrations.llm.errors import LLMError
from integrations.models import AuditAction, AuthProfile, ConnectionTest, CustomModel, TestStatus
from integrations.roles import can_edit, editor_required
from integrations.views.helpers import go


@require_GET
def profile_list(request):
    profiles = AuthProfile.objects.order_by("name").prefetch_related("integrations")
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


def _retest(request, profile: AuthProfile, new_auth) -> list[tuple[CustomModel, CallResult]]:
    """Test every enabled model using the profile with the new credentials; record each test."""
    models = list(
        CustomModel.objects.filter(
            integration__auth_profile=profile, enabled=True, integration__enabled=True
        ).select_related("integration")
    )
    jobs = []
    for model in models:
        try:
            config = replace(services.config_for(model.integration, model), auth=new_auth)
            jobs.append((model, config, None))
        except LLMError as exc:
            jobs.append((model, None, CallResult(ok=False, error=exc)))

    def one(job):
        model, config, failed = job
        params = model.test_model_parameters or services.DEFAULT_TEST_PARAMETERS
        return failed or client.call(config, services.test_prompt(params))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, jobs))
    tested = []
    for (model, config, _), result in zip(jobs, results, strict=True):
        params = model.test_model_parameters or services.DEFAULT_TEST_PARAMETERS
        # Recorded against the integration only: unsaved credentials must not move the
        # saved model's badge. _follow_tests() moves it once the credentials are saved.
        test = services.record_test(
            model.integration, None, config, result, request, params, f"{model} (new credentials)"
        )
        tested.append((model, result, test))
    return tested


def _follow_tests(tested) -> None:
    """Link the tests of the now saved credentials to their models and move the badges."""
    for model, result, test in tested:
        ConnectionTest.objects.filter(pk=test.pk).update(model=model)
        model.last_test_status = TestStatus.PASSING if result.ok else TestStatus.FAILING
        model.last_test_latency_ms = result.latency_ms
        model.last_tested_at = test.created_at
        model.save(update_fields=["last_test_status", "last_test_latency_ms", "last_tested_at"])


@require_http_methods(["GET", "POST"])
@editor_required
def profile_edit(request, pk=None):
    profile = get_object_or_404(AuthProfile, pk=pk) if pk else AuthProfile(created_by=request.user)
    form = AuthProfileForm(request.POST or None, instance=profile, user=request.user)
    ctx = {"form": form, "profile": profile}
    if request.method != "POST" or not form.is_valid():
        return render(request, "integrations/auth_profile_form.html", ctx)
    failing: list = []
    tested: list = []
    before = (
        audit.snapshot(AuthProfile.objects.get(pk=pk), AuthProfile.SECRET_FIELDS) if pk else None
    )
    if pk:
        try:
            old_auth = services.auth_config(AuthProfile.objects.get(pk=pk))
        except LLMError:
            old_auth = None  # an unreadable secret: anything typed now is a change
        try:
            new_auth = services.auth_config(form.instance)
        except LLMError as exc:
            form.add_error(None, exc.message)
            return render(request, "integrations/auth_profile_form.html", ctx)
        if old_auth is None or new_auth.effective() != old_auth.effective():
            tested = _retest(request, profile, new_auth)
            failing = [(m, r) for m, r, _ in tested if not r.ok]
            if failing and request.POST.get("action") != "save_disable":
                ctx["failing"] = failing
                return render(request, "integrations/auth_profile_form.html", ctx)
            if tested and not failing:
                messages.success(request, f"The new credentials passed on {len(tested)} model(s).")
    with transaction.atomic():
        form.save()
        _follow_tests(tested)
        if before is None:
            audit.record_created(request, profile, AuthProfile.SECRET_FIELDS)
        else:
            changes = audit.diff(before, audit.snapshot(profile, AuthProfile.SECRET_FIELDS))
            if changes:
                audit.record(request, AuditAction.UPDATE, profile, changes)
        for model, _ in failing:
            model.enabled = False
            model.save(update_fields=["enabled", "updated_at"])
            audit.record(request, AuditAction.DISABLE, model, detail="failed with new credentials")
    if failing:
        names = ", ".join(str(m) for m, _ in failing)
        messages.error(
            request,
            f"Saved; these models failed with the new credentials and were disabled: {names}.",
        )
    messages.success(request, f"Auth profile {profile.name} saved.")
    return go(request, reverse("auth-profiles"))


@require_http_methods(["GET", "POST"])
@editor_required
def profile_delete(request, pk):
    profile = get_object_or_404(AuthProfile, pk=pk)
    used_by = list(profile.integrations.order_by("name"))
    if request.method == "POST" and not used_by:
        audit.record(request, AuditAction.DELETE, profile)
        profile.delete()
        messages.success(request, f"Auth profile {profile.name} deleted.")
        return go(request, reverse("auth-profiles"))
    if request.method == "POST":
        names = ", ".join(i.name for i in used_by)
        messages.error(request, f"{profile.name} is used by {names}; it was not deleted.")
        return redirect("auth-profile-delete", pk=pk)
    ctx = {"profile": profile, "used_by": used_by}
    return render(request, "integrations/auth_profile_delete.html", ctx)
