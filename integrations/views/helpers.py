from __future__ import annotations

from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget


def safe_next(request, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, {request.get_host()}, request.is_secure()
    ):
        return target
    return default


def go(request, url: str):
    """Redirect a plain POST; tell htmx to navigate."""
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


def page_or_part(request, template: str, ctx: dict, part: str, replace: str | None = None):
    """Render the whole page, or for htmx only the named partial.

    `replace` (a CSS selector) makes htmx swap the partial over that element whatever the
    request targeted: a form re-rendered with errors replaces itself, not the results.
    """
    if not request.htmx:
        return render(request, template, ctx)
    response = render(request, f"{template}#{part}", ctx)
    return reswap(retarget(response, replace), "outerHTML") if replace else response


def download(body: bytes, content_type: str, filename: str):
    """A file to save: the export pages' answer."""
    from django.http import HttpResponse

    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
