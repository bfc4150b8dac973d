"""The Sandbox: conversations, columns to compare, streaming, saved prompts, history.
Every signed-in role may use it."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from integrations.gateway import routed
from integrations.llm.redact import curl_from_redacted
from integrations.models import CustomModel
from integrations.team.roles import can_edit
from integrations.views.helpers import go, page_or_part
from sandbox import prompts, ratelimit, services, tools
from sandbox.forms import ROUTE, ColumnForm, SandboxForm, is_pick, is_uuid, model_choices
from sandbox.models import SandboxRun

PAGE = "sandbox/sandbox.html"
HISTORY_PAGE_SIZE = 50


def _visible_runs(user):
    """Members see their own runs; Editors and Admins see everyone's."""
    runs = SandboxRun.objects.all()
    return runs if can_edit(user) else runs.filter(user=user)


def column_initial(model: CustomModel, params: dict | None = None) -> dict:
    """A column's fields for a model: the given parameters, else the model's defaults.
    A parameter the model's request body fixes stays blank (its field says the value)
    unless it was explicitly overridden."""
    if params is None:
        params = {"temperature": model.temperature, "max_tokens": model.max_tokens}
    column = ColumnForm(model=model)
    overrides = set(params.get("overrides", ()))
    values = {k: v for k, v in params.items() if k not in column.fixed or k in overrides}
    if isinstance(values.get("stop"), list):
        values["stop"] = "\n".join(values["stop"])
    return {"model": str(model.pk)} | {k: v for k, v in values.items() if k != "overrides"}


def _column(model_id, params=None) -> dict:
    if model_id and is_pick(model_id) and model_id.startswith(ROUTE):
        route = routed.usable_routes().filter(pk=model_id.removeprefix(ROUTE)).first()
        if route is None:
            return {}
        values = {k: v for k, v in (params or {}).items() if k != "overrides"}
        if isinstance(values.get("stop"), list):
            values["stop"] = "\n".join(values["stop"])
        return {"initial": {"model": model_id} | values}
    model = (
        CustomModel.objects.select_related("integration").filter(pk=model_id).first()
        if model_id and is_uuid(model_id)
        else None
    )
    if model is None:
        return {}
    return {"initial": column_initial(model, params), "model": model}


def _picked(run: SandboxRun) -> str:
    """What a run's column had picked: its route, or its model."""
    return f"{ROUTE}{run.route_id}" if run.route_id else str(run.model_id or "")


def _opened(request) -> SandboxForm:
    """The form as a link opens it: a run again (?run=), a saved prompt (?prompt=) or a
    model (?model=, from the catalog)."""
    run_id, prompt_id = request.GET.get("run", ""), request.GET.get("prompt", "")
    if is_uuid(run_id):
        run = _visible_runs(request.user).filter(pk=run_id).first()
        if run is not None:
            runs = _visible_runs(request.user).filter(pk__in=run.siblings).order_by("column")
            runs = list(runs) or [run]
            return _reopened(run, runs, request.GET.get("continue") == "1")
    if is_uuid(prompt_id):
        saved = prompts.visible(request.user).filter(pk=prompt_id).first()
        if saved is not None:
            number = request.GET.get("version", "")
            versions = saved.versions.order_by("-number")
            picked = versions.filter(number=int(number)) if number.isdigit() else versions
            source = picked.first() or saved  # a version, else a prompt saved before versions
            return SandboxForm(
                initial={"system_prompt": source.system_prompt, "user_prompt": source.user_prompt}
                | tools.initial_of(getattr(source, "options", None) or {}),
                columns=[_column(c.get("model"), c.get("params")) for c in source.columns],
                turns=source.turns,
                variables=source.variables,
            )
    return SandboxForm(initial={"stream": True}, columns=[_column(request.GET.get("model"))])


def _reopened(run: SandboxRun, runs: list, carry_on: bool) -> SandboxForm:
    """A run's page as it was sent: its prompts as typed (with their {{variables}}) and
    each column's model and parameters. `carry_on` (Continue from this reply): the reply
    joins the conversation, with a blank result per tool call, and the message is empty."""
    typed = run.template or {}
    system = typed.get("system", run.system_prompt)
    turns = [dict(t) for t in typed.get("turns") or run.turns or []]
    if not turns:
        turns = [{"role": "user", "content": run.user_prompt}]
    draft = ""
    if carry_on:
        reply = {"role": "assistant", "content": run.reply}
        if run.tool_calls:
            reply["tool_calls"] = run.tool_calls
        turns.append(reply)
        turns += [{"role": "tool", "content": "", "tool_call_id": c["id"]} for c in run.tool_calls]
    elif turns[-1]["role"] == "user":
        draft = turns.pop()["content"]
    return SandboxForm(
        initial={"system_prompt": system, "user_prompt": draft}
        | {"stream": run.streamed}
        | tools.initial_of(run.options or {}),
        columns=[_column(_picked(r), r.parameters) for r in runs],
        turns=turns,
        variables=typed.get("variables"),
    )


def _ctx(request, form, **extra) -> dict:
    if form.is_bound:
        form.load_choices()  # the form is about to be shown again
    recent = (
        _visible_runs(request.user)
        .filter(user=request.user, column=0)
        .only("id", "model_name", "user_prompt", "status", "created_at", "compare_group")[:8]
    )
    return {
        "form": form,
        "recent": recent,
        "saved_prompts": prompts.visible(request.user),
        **extra,
    }


def _result(run: SandboxRun) -> dict:
    return {"run": run, "curl": curl_from_redacted(run.request) if run.request else ""}


def _form_again(request, form):
    """The form with its errors above Run, in place of itself (not inside the results)."""
    return page_or_part(request, PAGE, _ctx(request, form), "sandbox-form", "#sandbox-form")


@require_GET
def sandbox(request):
    return render(request, PAGE, _ctx(request, _opened(request)))


@require_GET
def column(request):
    """One column's fields: a new column (Add model), or the parameters of the model just
    picked, loaded from its defaults and its request body."""
    index = request.GET.get("column", "0")
    index = int(index) if index.isdigit() and int(index) < 4 else 0
    prefix = f"c{index}-" if index else ""
    picked = _column(request.GET.get(f"{prefix}model"))
    form = ColumnForm(
        column=index,
        initial=picked.get("initial"),
        choices=model_choices(),
        model=picked.get("model"),
    )
    part = (
        "column-params" if "model" in request.GET or f"{prefix}model" in request.GET else "column"
    )
    return render(request, f"{PAGE}#{part}", {"column": form})


@require_POST
def run(request):
    """Run every column at once; answers the results (htmx) or the page."""
    form = SandboxForm(request.POST)
    if not form.is_valid():
        return _form_again(request, form)
    columns = form.targets()
    if columns is None:
        return _form_again(request, form)
    wait = ratelimit.check(request.user.pk, len(columns))
    if wait:
        form.add_error(None, f"Too many runs: try again in {wait} s.")
        return _form_again(request, form)
    if len(columns) == 1:
        runs = [services.run_once(request, *columns[0], template=form.template())]
    else:
        runs = services.compare(request, columns, template=form.template())
    results = [_result(r) for r in runs]
    for column, result in zip(form.columns, results, strict=True):
        result["slot"] = column.column  # each result shows in its column, under its settings
        column.result = result
    if request.htmx:  # the results alone, each swapped into its column's slot
        return render(request, f"{PAGE}#column-results", {"results": results})
    return render(request, PAGE, _ctx(request, form))


@require_GET
def history(request):
    """Every run; a compare is one entry (its first column) naming all its models."""
    runs = (
        _visible_runs(request.user)
        .filter(column=0)
        .select_related("user")
        .defer("request", "raw_excerpt", "system_prompt")
    )
    model = request.GET.get("model", "").strip()
    if model:
        in_compare = SandboxRun.objects.filter(
            model_name__icontains=model, compare_group__isnull=False
        ).values("compare_group")
        runs = runs.filter(Q(model_name__icontains=model) | Q(compare_group__in=in_compare))
    who = request.GET.get("user", "")
    if who and can_edit(request.user):
        runs = runs.filter(user__username=who)
    status = request.GET.get("status", "")
    if status:
        runs = runs.filter(status=status)
    page = Paginator(runs, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    groups = [r.compare_group for r in page.object_list if r.compare_group]
    names: dict = {}
    for group, name in (
        SandboxRun.objects.filter(compare_group__in=groups)
        .order_by("column")
        .values_list("compare_group", "model_name")
    ):
        names.setdefault(group, []).append(name)
    for r in page.object_list:
        r.compared = names.get(r.compare_group, [])
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
    runs = _visible_runs(request.user).filter(pk__in=run.siblings).order_by("column")
    runs = list(runs.select_related("model")) or [run]
    from sandbox.models import Dataset

    datasets = Dataset.objects.only("id", "name") if can_edit(request.user) else ()
    return render(
        request,
        "sandbox/run_detail.html",
        {"run": run, "results": [_result(r) for r in runs], "datasets": datasets},
    )


@require_POST
def rerun(request, pk):
    """Run the same prompts and parameters again against the same model."""
    old = _visible_runs(request.user).filter(pk=pk).first()
    if old is None:
        raise Http404("No such run.")
    prompt = services.prompt_of(old)
    if old.route_id:
        goal = routed.prepare(old.route_id, prompt)
    else:
        goal = services.target(old.model_id) if old.model_id else None
        goal = services.exact(goal) if goal is not None else None
    error = None
    if goal is None:
        error = f"That {'route' if old.route_id else 'model'} is disabled or deleted."
    elif wait := ratelimit.check(request.user.pk, 1):
        error = f"Too many runs: try again in {wait} s."
    if error:
        ctx = {"run": old, "results": [_result(old)], "rerun_error": error}
        return render(request, "sandbox/run_detail.html", ctx)
    new = services.run_once(request, goal, prompt, template=old.template)
    return go(request, reverse("sandbox-run", args=[new.pk]))


@require_POST
def prompt_save(request):
    """Save the page's prompt, its variables and its columns under a name."""
    saved, error = prompts.save(request.user, request.POST)
    ctx = {"saved_prompts": prompts.visible(request.user), "just_saved": saved, "error": error}
    if request.htmx:
        return render(request, f"{PAGE}#saved-prompts", ctx)
    if saved is None:
        return render(request, PAGE, _ctx(request, SandboxForm(request.POST)) | ctx)
    return go(request, f"{reverse('sandbox')}?prompt={saved.pk}")


@require_POST
def prompt_delete(request, pk):
    prompts.delete(request.user, pk)
    if request.htmx:
        return render(
            request, f"{PAGE}#saved-prompts", {"saved_prompts": prompts.visible(request.user)}
        )
    return go(request, reverse("sandbox"))
