"""A saved prompt's versions: the list with labels, a diff between any two, a label moved
(Editors and Admins), and any version opened in the Sandbox."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from integrations.team.roles import can_edit, editor_required
from integrations.views.helpers import go
from sandbox import prompts


def _prompt(request, pk):
    found = prompts.visible(request.user).filter(pk=pk).first()
    if found is None:
        raise Http404("No such prompt.")
    return found


def _number(value: str, default: int) -> int:
    return int(value) if value.isdigit() else default


@require_GET
def prompt_detail(request, pk):
    prompt = _prompt(request, pk)
    versions = list(prompt.versions.select_related("created_by").prefetch_related("labels"))
    ctx = {"prompt": prompt, "versions": versions, "can_edit": can_edit(request.user)}
    if len(versions) >= 2:
        by_number = {v.number: v for v in versions}
        new = by_number.get(_number(request.GET.get("b", ""), versions[0].number), versions[0])
        old = by_number.get(_number(request.GET.get("a", ""), versions[1].number), versions[1])
        ctx |= {"old": old, "new": new, "diff": prompts.diff(old, new)}
    return render(request, "sandbox/prompt_detail.html", ctx)


@require_POST
@editor_required
def prompt_label(request, pk):
    prompt = _prompt(request, pk)
    version = prompt.versions.filter(number=_number(request.POST.get("version", ""), 0)).first()
    if version is None:
        messages.error(request, "Pick a version for the label.")
    elif error := prompts.move_label(request, prompt, request.POST.get("label", ""), version):
        messages.error(request, error)
    else:
        messages.success(request, f"Label moved to version {version.number}.")
    return go(request, reverse("prompt-detail", args=[prompt.pk]))
