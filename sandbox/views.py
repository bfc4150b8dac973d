"""The Sandbox: run, stream, compare, history, rerun. Every signed-in role may use it."""

from __future__ import annotations

import json

from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations.llm import client
from integrations.llm.config import CallResult, Prompt
from integrations.llm.errors import LLMError
from integrations.llm.redact import curl_from_redacted
from integrations.models import CustomModel
from integrations.team.roles import can_edit
from integrations.views.helpers import go, page_or_part
from sandbox import ratelimit, services
from sandbox.forms import SandboxForm, is_uuid
from sandbox.models import SandboxRun
from sandbox.render import markdown_html

PAGE = "sandbox/sandbox.html"
HISTORY_PAGE_SIZE = 50


def _visible_runs(user):
    """Members see their own runs; Editors and Admins see everyone's."""
    runs = SandboxRun.objects.all()
    return runs if can_edit(user) else runs.filter(user=user)


def _initial(request) -> dict:
    run_id = request.GET.get("run")
    if run_id:
        run = _visible_runs(request.user).filter(pk=run_id).first() if is_uuid(run_id) else None
        if run is not None:
            params = run.parameters or {}
            return {
                "model": str(run.model_id or ""),
                "system_prompt": run.system_prompt,
                "user_prompt": run.user_prompt,
                "temperature": params.get("temperature"),
                "max_tokens": params.get("max_tokens"),
                "top_p": params.get("top_p"),
                "stop": "\n".join(params.get("stop") or []),
                "stream": run.streamed,
            }
    model_id = request.GET.get("model", "")
    model = CustomModel.objects.filter(pk=model_id).first() if is_uuid(model_id) else None
    if model is None:
        return {"stream": True}
    return {
        "model": str(model.pk),
        "temperature": model.temperature,
        "max_tokens": model.max_tokens,
        "stream": True,
    }


def _ctx(request, form, **extra) -> dict:
    if form.is_bound:
        form.load_choices()  # the form is about to be shown again
    recent = (
        _visible_runs(request.user)
        .filter(user=request.user)
        .only("id", "model_name", "user_prompt", "status", "created_at")[:8]
    )
    return {"form": form, "recent": recent, **extra}


def _result(run: SandboxRun) -> dict:
    return {"run": run, "curl": curl_from_redacted(run.request) if run.request else ""}


def _limited(request, form, cost: int):
    wait = ratelimit.check(request.user.pk, cost)
    if wait is None:
        return None
    form.add_error(None, f"Too many runs: try again in {wait} s.")
    return _form_again(request, form)


def _form_again(request, form):
    """The form with its errors, in place of itself (not inside the results)."""
    return page_or_part(request, PAGE, _ctx(request, form), "sandbox-form", "#sandbox-form")


@require_GET
def sandbox(request):
    form = SandboxForm(initial=_initial(request))
    return render(request, PAGE, _ctx(request, form))


@require_POST
def run(request):
    """Run one model, or several for Compare; answers the result panel (htmx) or the page."""
    form = SandboxForm(request.POST)
    if not form.is_valid():
        return _form_again(request, form)
    goals = form.targets()
    if not goals:
        form.add_error("model", "That model is not available: it may be disabled or deleted.")
        return _form_again(request, form)
    limited = _limited(request, form, len(goals))
    if limited:
        return limited
    prompt = form.prompt()
    if len(goals) == 1:
        runs = [services.run_once(request, goals[0], prompt)]
    else:
        runs = services.compare(request, goals, prompt)
    results = [_result(r) for r in runs]
    if request.htmx:  # the results alone: no model picker to build
        return render(request, f"{PAGE}#results", {"results": results})
    return render(request, PAGE, _ctx(request, form, results=results))


def _sse(event: str, data) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


@require_POST
def stream(request):
    """Stream one model's reply as server-sent events: token..., then done with the panel."""
    form = SandboxForm(request.POST)
    if not form.is_valid():
        html = render_to_string(f"{PAGE}#sandbox-form", _ctx(request, form), request)
        return StreamingHttpResponse(
            iter([_sse("invalid", {"html": html})]), content_type="text/event-stream"
        )
    goals = form.targets()
    wait = ratelimit.check(request.user.pk, 1) if goals else None
    if not goals or wait:
        message = (
            f"Too many runs: try again in {wait} s." if wait else "That model is not available."
        )
        return StreamingHttpResponse(
            iter([_sse("refused", {"message": message})]), content_type="text/event-stream"
        )
    goal, prompt, user = goals[0], form.prompt(), request.user
    model = goal.model

    def events():
        run = services.new_run(user, model, prompt, streamed=True)
        config, failed = goal.config, goal.failed
        parts: list[str] = []
        finished = False
        generator = iter([failed]) if failed else client.stream(config, prompt)
        try:
            yield _sse("start", {"model": model.name})
            for item in generator:
                if isinstance(item, str):
                    parts.append(item)
                    yield _sse("token", {"t": item})
                else:
                    finished = True
                    services.finish(run, item, request)
                    html = render_to_string(f"{PAGE}#result", _result(run), request)
                    yield _sse("done", {"html": html, "run": str(run.pk)})
        finally:
            if not finished:
                # The browser pressed Stop or went away: close the upstream, keep the partial text.
                if hasattr(generator, "close"):
                    generator.close()
                stopped = CallResult(
                    ok=False,
                    content="".join(parts),
                    streamed=True,
                    error=LLMError("connection", "Stopped by the user."),
                )
                services.finish(run, stopped, request, stopped=True)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # let proxies pass tokens through at once
    return response


@require_GET
def history(request):
    runs = (
        _visible_runs(request.user)
        .select_related("user")
        .defer("request", "raw_excerpt", "system_prompt")
    )
    model = request.GET.get("model", "").strip()
    if model:
        runs = runs.filter(model_name__icontains=model)
    who = request.GET.get("user", "")
    if who and can_edit(request.user):
        runs = runs.filter(user__username=who)
    status = request.GET.get("status", "")
    if status:
        runs = runs.filter(status=status)
    page = Paginator(runs, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    ctx = {
        "page": page,
        "model": model,
        "who": who,
        "status": status,
        "sees_all": can_edit(request.user),
    }
    return render(request, "sandbox/history.html", ctx)


@require_GET
def run_detail(request, pk):
    run = _visible_runs(request.user).filter(pk=pk).select_related("user", "model").first()
    if run is None:
        raise Http404("No such run.")
    return render(request, "sandbox/run_detail.html", _result(run))


@require_GET
def run_markdown(request, pk):
    """The reply as sanitized Markdown, fetched when someone asks for it."""
    run = _visible_runs(request.user).filter(pk=pk).only("reply", "user_id").first()
    if run is None:
        raise Http404("No such run.")
    return HttpResponse(markdown_html(run.reply))


@require_http_methods(["POST"])
def rerun(request, pk):
    """Run the same prompts and parameters again against the same model."""
    old = _visible_runs(request.user).filter(pk=pk).first()
    if old is None:
        raise Http404("No such run.")
    goal = services.target(old.model_id) if old.model_id else None
    if goal is None:
        return render(
            request,
            "sandbox/run_detail.html",
            _result(old) | {"rerun_error": "That model is disabled or deleted."},
        )
    wait = ratelimit.check(request.user.pk, 1)
    if wait:
        return render(
            request,
            "sandbox/run_detail.html",
            _result(old) | {"rerun_error": f"Too many runs: try again in {wait} s."},
        )
    new = services.run_once(
        request, goal, Prompt(old.system_prompt, old.user_prompt, dict(old.parameters))
    )
    return go(request, reverse("sandbox-run", args=[new.pk]))
