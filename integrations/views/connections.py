"""Test then Save: add a custom LLM, edit an integration, add or edit a model.

One form, one view, several buttons (action = preview | test | save | draft).
Test validates and calls the real client, records a ConnectionTest, writes no
configuration, and hands back a signed receipt when it passes. Save validates
again and accepts only a receipt for exactly this configuration and user.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django_htmx.http import reswap, retarget

from integrations import audit, receipts, services
from integrations.forms import NEW, ConnectionForm, default_template_text
from integrations.llm import client
from integrations.llm.errors import LLMError
from integrations.llm.presets import PRESETS
from integrations.models import (
    AuditAction,
    AuthProfile,
    ConnectionTest,
    CustomModel,
    Integration,
    Protocol,
    TestStatus,
)
from integrations.roles import editor_required
from integrations.views.helpers import go

TEMPLATE = "integrations/connection_form.html"


def _page_ctx(form: ConnectionForm, title: str, cancel_url: str) -> dict:
    return {
        "form": form,
        "title": title,
        # An untouched edit page may save (nothing changed); the add page needs a test.
        "save_enabled": form.mode != "add" and not form.is_bound,
        "cancel_url": cancel_url,
        "NEW": NEW,
        "presets": {
            key: {
                "endpoint": p.endpoint,
                "protocol": p.protocol,
                "auth_kind": p.auth_kind,
                "header_name": p.header_name,
                "query_param": p.query_param,
                "example_model": p.example_model,
                "note": p.note,
            }
            for key, p in PRESETS.items()
        },
        "default_templates": {value: default_template_text(value) for value in Protocol.values},
    }


def _saved_fingerprint(form: ConnectionForm) -> str | None:
    """Return the fingerprint of what is saved now, to let unchanged edits through."""
    if form.mode == "model" and form.model is not None:
        return services.saved_fingerprint(form.model)
    if form.mode == "integration":
        model = form.integration.models.filter(pk=form.cleaned_data.get("test_model")).first()
        return services.saved_fingerprint(model) if model else None
    return None


def _run_test(request, form: ConnectionForm, ctx: dict) -> None:
    prompt = services.test_prompt(form.test_params)
    ctx["curl"] = client.curl_command(form.config, prompt)
    ctx["preview"] = client.preview_request(form.config, prompt)
    if request.POST.get("action") == "preview":
        return
    result = client.call(form.config, prompt)
    subject = f"{form.cleaned_data.get('integration_name') or form.integration.name}"
    if form.mode != "integration":
        subject += f" / {form.cleaned_data['model_name']}"
    # A test of an edited, unsaved configuration must not move the saved model's badge.
    test = services.record_test(
        form.integration,
        None,
        form.config,
        result,
        request,
        form.test_params,
        subject,
    )
    ctx.update(result=result, test=test)
    if result.ok:
        ctx["receipt"] = receipts.issue(form.fingerprint(), request.user)
        ctx["save_enabled"] = True


def _save(request, form: ConnectionForm, draft: bool):
    """Save the form, or return None after adding the reason it may not be saved."""
    fingerprint = form.fingerprint()
    passed = False
    if not draft:
        problem = receipts.problem(request.POST.get("test_receipt", ""), fingerprint, request.user)
        if problem is None:
            passed = True
        elif fingerprint != _saved_fingerprint(form):
            form.add_error(None, problem)
            return None
    if draft:
        enabled = False
    elif passed:
        enabled = True
    else:  # unchanged configuration: keep whatever state it had
        enabled = (form.model or form.integration).enabled
    before_integration = audit.integration_state(form.integration) if form.integration else None
    before_model = audit.snapshot(form.model) if form.model else None
    obj = form.save(request.user, enabled=enabled)
    form.changed_anything = _audit_save(request, form, obj, before_integration, before_model)
    integration = obj if isinstance(obj, Integration) else obj.integration
    model = obj if isinstance(obj, CustomModel) else None
    tests = ConnectionTest.objects.filter(user=request.user, config_hash=fingerprint)
    tests.filter(integration__isnull=True).update(integration=integration)
    if model is not None:
        tests.filter(integration=integration, model__isnull=True).update(model=model)
    if passed:
        last = tests.filter(ok=True).order_by("-created_at").first()
        target = model or form.integration.models.filter(pk=form.cleaned_data["test_model"]).first()
        if last is not None and target is not None:
            target.last_test_status = TestStatus.PASSING
            target.last_test_latency_ms = last.latency_ms
            target.last_tested_at = last.created_at
            target.save(
                update_fields=["last_test_status", "last_test_latency_ms", "last_tested_at"]
            )
    return obj


def _audit_save(request, form, obj, before_integration, before_model) -> bool:
    """Audit a save; return whether it changed anything."""
    integration = obj if isinstance(obj, Integration) else obj.integration
    if form.created_profile is not None:
        audit.record_created(request, form.created_profile, AuthProfile.SECRET_FIELDS)
    if form.mode == "add":
        audit.record(
            request,
            AuditAction.CREATE,
            integration,
            audit.diff({}, audit.integration_state(integration)),
        )
        audit.record_created(request, obj)
        return True
    if form.mode == "integration":
        changes = audit.diff(before_integration, audit.integration_state(integration))
        if changes:
            audit.record(request, AuditAction.UPDATE, integration, changes)
        return bool(changes) or form.created_profile is not None
    if before_model is None:
        audit.record_created(request, obj)
        return True
    changes = audit.diff(before_model, audit.snapshot(obj))
    if changes:
        audit.record(request, AuditAction.UPDATE, obj, changes)
    return bool(changes)


def _handle(request, form: ConnectionForm, ctx: dict):
    action = request.POST.get("action", "test")
    if not form.is_valid():
        ctx["form_invalid"] = True
        response = render(request, f"{TEMPLATE}#connection-form" if request.htmx else TEMPLATE, ctx)
        if request.htmx:
            response = reswap(retarget(response, "#connection-form"), "outerHTML")
        return response
    if action in ("test", "preview"):
        try:
            _run_test(request, form, ctx)
        except LLMError as exc:  # e.g. a template that cannot carry a body token
            form.add_error(None, exc.message)
            return render(request, f"{TEMPLATE}#connection-form" if request.htmx else TEMPLATE, ctx)
        if request.htmx:
            return render(request, f"{TEMPLATE}#test-result", ctx)
        return render(request, TEMPLATE, ctx)
    obj = _save(request, form, draft=action == "draft")
    if obj is None:
        response = render(request, f"{TEMPLATE}#connection-form" if request.htmx else TEMPLATE, ctx)
        return (
            reswap(retarget(response, "#connection-form"), "outerHTML")
            if request.htmx
            else response
        )
    integration = obj if isinstance(obj, Integration) else obj.integration
    if not form.changed_anything:
        messages.info(request, f"Nothing changed: {obj} is as it was.")
    else:
        verb = "saved as a disabled draft" if action == "draft" else "saved"
        messages.success(request, f"{obj} {verb}.")
    return go(request, reverse("integration-detail", args=[integration.pk]))


@require_http_methods(["GET", "POST"])
@editor_required
def integration_add(request):
    form = ConnectionForm(request.POST or None, mode="add", user=request.user)
    ctx = _page_ctx(form, "Add custom LLM", reverse("home"))
    if request.method == "POST":
        return _handle(request, form, ctx)
    preset = PRESETS.get(request.GET.get("preset", ""))
    if preset:
        form.initial.update(preset=preset.key, endpoint=preset.endpoint, protocol=preset.protocol)
    return render(request, TEMPLATE, ctx)


@require_http_methods(["GET", "POST"])
@editor_required
def integration_edit(request, pk):
    integration = get_object_or_404(Integration.objects.select_related("auth_profile"), pk=pk)
    form = ConnectionForm(
        request.POST or None, mode="integration", integration=integration, user=request.user
    )
    ctx = _page_ctx(
        form, f"Edit integration {integration.name}", reverse("integration-detail", args=[pk])
    )
    ctx["integration"] = integration
    if request.method == "POST":
        return _handle(request, form, ctx)
    return render(request, TEMPLATE, ctx)


@require_http_methods(["GET", "POST"])
@editor_required
def model_add(request, pk):
    integration = get_object_or_404(Integration.objects.select_related("auth_profile"), pk=pk)
    form = ConnectionForm(
        request.POST or None, mode="model", integration=integration, user=request.user
    )
    ctx = _page_ctx(
        form, f"Add a model to {integration.name}", reverse("integration-detail", args=[pk])
    )
    ctx["integration"] = integration
    if request.method == "POST":
        return _handle(request, form, ctx)
    model_id = request.GET.get("model_id", "")
    if model_id:
        form.initial.update(model_id=model_id, model_name=model_id)
    return render(request, TEMPLATE, ctx)


@require_http_methods(["GET", "POST"])
@editor_required
def model_edit(request, pk):
    model = get_object_or_404(
        CustomModel.objects.select_related("integration__auth_profile"), pk=pk
    )
    integration = model.integration
    form = ConnectionForm(
        request.POST or None, mode="model", integration=integration, model=model, user=request.user
    )
    ctx = _page_ctx(
        form, f"Edit model {model.name}", reverse("integration-detail", args=[integration.pk])
    )
    ctx["integration"] = integration
    ctx["model"] = model
    if request.method == "POST":
        return _handle(request, form, ctx)
    return render(request, TEMPLATE, ctx)
