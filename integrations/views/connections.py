"""Test then Save: add a custom LLM, edit an integration, add or edit a model.

One form, one view, several buttons (action = preview | test | save | draft).
Test validates and calls the real client, records a ConnectionTest, writes no
configuration, and hands back a signed receipt when it passes. Save validates
again and accepts only a receipt for exactly this configuration and user.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from integrations import receipts, services, writes
from integrations.forms import NEW, ConnectionPage, default_template_text
from integrations.llm import inputs, preview
from integrations.llm.errors import LLMError
from integrations.llm.presets import PRESETS
from integrations.models import (
    CustomModel,
    Integration,
    Protocol,
)
from integrations.team.roles import editor_required
from integrations.views.helpers import go, page_or_part

TEMPLATE = "integrations/connection_form.html"


def _page_ctx(form: ConnectionPage, title: str, cancel_url: str) -> dict:
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


def _run_test(request, form: ConnectionPage, ctx: dict) -> None:
    prompt = services.test_prompt(form.test_params, form.config.kind)
    ctx["curl"] = preview.curl_command(form.config, prompt)
    ctx["preview"] = preview.preview_request(form.config, prompt)
    if request.POST.get("action") == "preview":
        return
    # Recorded against the integration only: a test of an unsaved change moves no badge.
    result, test = writes.test_config(
        form.config, form.test_params, form.integration, None, request, form.subject()
    )
    ctx.update(result=result, test=test)
    if result.ok:
        ctx["receipt"] = receipts.issue(form.fingerprint(), request.user)
        ctx["save_enabled"] = True


def _save(request, form: ConnectionPage, draft: bool) -> writes.Saved | None:
    """Save through the write path, or return None after adding why it may not be saved."""
    try:
        return writes.save_connection(
            form.change(),
            request=request,
            proof=request.POST.get("test_receipt", ""),
            draft=draft,
        )
    except writes.Refused as exc:
        form.add_error(None, exc.message)
        return None


def _handle(request, form: ConnectionPage, ctx: dict):
    action = request.POST.get("action", "test")
    if not form.is_valid():
        ctx["form_invalid"] = True
        return page_or_part(request, TEMPLATE, ctx, "connection-form", "#connection-form")
    if action in ("test", "preview"):
        try:
            _run_test(request, form, ctx)
        except LLMError as exc:  # e.g. a template that cannot carry a body token
            form.add_error(None, exc.message)
            return page_or_part(request, TEMPLATE, ctx, "connection-form", "#connection-form")
        return page_or_part(request, TEMPLATE, ctx, "test-result")
    saved = _save(request, form, draft=action == "draft")
    if saved is None:
        return page_or_part(request, TEMPLATE, ctx, "connection-form", "#connection-form")
    obj = saved.model or saved.integration
    if not saved.changed:
        messages.info(request, f"Nothing changed: {obj} is as it was.")
    else:
        verb = "saved as a disabled draft" if action == "draft" else "saved"
        messages.success(request, f"{obj} {verb}.")
    for model in saved.disabled:
        messages.error(request, f"{model} failed with this change and was disabled.")
    return go(request, reverse("integration-detail", args=[saved.integration.pk]))


@require_http_methods(["GET", "POST"])
@editor_required
def integration_add(request):
    preset = PRESETS.get(request.GET.get("preset", ""))
    initial = (
        {"preset": preset.key, "endpoint": preset.endpoint, "protocol": preset.protocol}
        if preset
        else {}
    )
    form = ConnectionPage(request.POST or None, mode="add", user=request.user, initial=initial)
    ctx = _page_ctx(form, "Add custom LLM", reverse("home"))
    if request.method == "POST":
        return _handle(request, form, ctx)
    return render(request, TEMPLATE, ctx)


@require_http_methods(["GET", "POST"])
@editor_required
def integration_edit(request, pk):
    integration = get_object_or_404(
        Integration.objects.select_related("auth_profile__stored_secret"), pk=pk
    )
    form = ConnectionPage(
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
    integration = get_object_or_404(
        Integration.objects.select_related("auth_profile__stored_secret"), pk=pk
    )
    model_id = request.GET.get("model_id", "")
    form = ConnectionPage(
        request.POST or None,
        mode="model",
        integration=integration,
        user=request.user,
        initial={"model_id": model_id, "model_name": model_id} if model_id else {},
    )
    ctx = _page_ctx(
        form, f"Add a model to {integration.name}", reverse("integration-detail", args=[pk])
    )
    ctx["integration"] = integration
    if request.method == "POST":
        return _handle(request, form, ctx)
    return render(request, TEMPLATE, ctx)


@require_http_methods(["GET", "POST"])
@editor_required
def model_edit(request, pk):
    model = get_object_or_404(
        CustomModel.objects.select_related("integration__auth_profile__stored_secret"), pk=pk
    )
    integration = model.integration
    form = ConnectionPage(
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


@require_POST
@editor_required
def add_fetched_models(request, pk):
    """Add the models picked from the endpoint's list in one step, each tested first."""
    integration = get_object_or_404(
        Integration.objects.select_related("auth_profile__stored_secret"), pk=pk
    )
    picked = [i for i in request.POST.getlist("model_id") if 0 < len(i) <= 200]
    ctx: dict = {"integration": integration}
    if not picked:
        ctx["add_error"] = "Tick at least one model to add."
    else:
        try:
            picked = [inputs.clean_text(i, "A model ID") for i in picked]
            ctx["outcomes"] = [
                {"id": i, "saved": isinstance(o, writes.Saved), "outcome": o}
                for i, o in writes.add_models(integration, picked, request)
            ]
        except inputs.InputError as exc:
            ctx["add_error"] = str(exc)
        except LLMError as exc:  # the integration's stored secrets cannot be read
            ctx["error"] = exc
    if request.htmx:
        # The outcome where the form was, and the Models table, which now lists them too.
        ctx |= {"models": integration.models.order_by("name"), "can_edit": True}
        page = "integrations/integration_detail.html"
        fetched = render_to_string(f"{page}#fetched-models", ctx, request)
        table = render_to_string(f"{page}#model-table", ctx, request)
        return HttpResponse(f'{fetched}<div id="model-table" hx-swap-oob="true">{table}</div>')
    added = [o["id"] for o in ctx.get("outcomes", []) if o["saved"]]
    if added:
        messages.success(request, f"Added and tested: {', '.join(added)}.")
    for o in ctx.get("outcomes", []):
        if not o["saved"]:
            messages.error(request, f"{o['id']} not added: {o['outcome'].message}")
    if ctx.get("add_error"):
        messages.error(request, ctx["add_error"])
    return redirect("integration-detail", pk=pk)
