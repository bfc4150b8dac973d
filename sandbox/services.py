"""Run prompts against saved models and keep every run. Writes SandboxRun rows only."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from integrations import audit
from integrations.gateway import metering, routed
from integrations.llm import client
from integrations.llm.config import CallResult, Prompt, counted
from integrations.models import AuditAction, CustomModel
from integrations.services import Target, target, usable_models  # noqa: F401 (the Sandbox's API)
from sandbox import tools
from sandbox.models import RunStatus, SandboxRun

RAW_EXCERPT_LIMIT = 16 * 1024


def new_run(
    user,
    model: CustomModel | None,
    prompt: Prompt,
    streamed: bool = False,
    group=None,
    column: int = 0,
    template: dict | None = None,
) -> SandboxRun:
    return SandboxRun(
        user=user,
        model=model,
        model_name=model.name if model is not None else "",
        integration_name=model.integration.name if model is not None else "",
        compare_group=group,
        column=column,
        system_prompt=prompt.system,
        user_prompt=prompt.user,
        turns=tools.turns_of(prompt.messages) if len(prompt.messages) > 1 else [],
        template=template or {},
        parameters=prompt.params | {"overrides": sorted(prompt.overrides)}
        if prompt.overrides
        else prompt.params,
        options=tools.options_of(prompt),
        streamed=streamed,
    )


def prompt_of(run: SandboxRun) -> Prompt:
    """The prompt a stored run sent, to run it again."""
    params = dict(run.parameters or {})
    overrides = frozenset(params.pop("overrides", ()))
    if not run.turns:
        base = Prompt.of(run.system_prompt, run.user_prompt, params, None, overrides)
    else:
        base = Prompt(run.system_prompt, tools.messages(run.turns), params, overrides=overrides)
    return replace(base, **tools.prompt_parts(run.options or {}))


def finish(
    run: SandboxRun, result: CallResult, request=None, stopped: bool = False, via=None
) -> SandboxRun:
    """Copy a result onto the run, store it and audit it: every run ends here. `via`: the
    routed call, when the run picked a route (the run is then the answering target's)."""
    if via is not None:
        answered = via.goal.model if via.goal is not None else run.model
        run.route_id, run.route_name, run.attempts = via.route.pk, via.route.name, via.attempts
        if answered is not None:
            run.model, run.model_name = answered, answered.name
            run.integration_name = answered.integration.name
        else:
            run.model_name = via.route.name
    run.reply = result.content
    calls = result.message.tool_calls if result.message is not None else ()
    run.tool_calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]
    run.finish_reason = result.finish_reason
    _count_tokens(run, result)
    run.latency_ms = result.latency_ms
    run.ttft_ms = result.ttft_ms
    run.status_code = result.status_code
    run.streamed = result.streamed
    run.request = result.request
    run.raw_excerpt = (result.raw or "")[:RAW_EXCERPT_LIMIT]
    run.cost = run.model.cost(run.prompt_tokens, run.completion_tokens) if run.model else None
    if stopped:
        run.status = RunStatus.STOPPED
    elif result.ok:
        run.status = RunStatus.OK
    else:
        run.status = RunStatus.FAILED
        run.error_kind = result.error.kind
        run.error_message = result.error.message
    run.save(force_insert=True)
    run.error = result.error  # for display right after the run; not stored as an object
    metering.from_run(request, run)
    how = " (streamed)" if run.streamed else ""
    audit.record(
        request, AuditAction.SANDBOX_RUN, run, detail=f"{run.model_name}: {run.status}{how}"
    )
    return run


def _count_tokens(run: SandboxRun, result: CallResult) -> None:
    """Copy the reported usage; estimate what is missing (a stopped run, an endpoint
    that reports none), marking the run so that every screen labels it an estimate."""
    usage = result.usage
    run.prompt_tokens, run.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    run.total_tokens = usage.total_tokens
    if not result.content and not result.ok:
        return  # nothing came back: there is nothing to estimate
    prompt, completion, estimated = counted(usage, prompt_of(run).text(), result.content)
    if estimated:
        run.prompt_tokens, run.completion_tokens = prompt, completion
        run.total_tokens = prompt + completion
        run.usage_estimated = True


def exact(goal: Target) -> Target:
    """The target as the Sandbox page calls it: the page loads the model's defaults into
    its fields, so what it sends is exactly what it shows (no defaults added unseen)."""
    if goal.config is None:
        return goal
    return Target(goal.model, replace(goal.config, default_params={}), goal.failed)


def first_model(goal) -> CustomModel | None:
    """The model a run starts with: a model's, or a route's first target (a routed run
    is moved to the target that answers when it finishes)."""
    if isinstance(goal, routed.Routed):
        found = [g for g in goal.goals.values() if g is not None]
        return found[0].model if found else None
    return goal.model


def called(goal, prompt: Prompt) -> CallResult:
    """One column's call: a model's, or a route's attempts."""
    if isinstance(goal, routed.Routed):
        return routed.call(goal)
    return goal.failed or client.call(goal.config, prompt)


def streamed(goal, prompt: Prompt, progress: dict):
    """One column's stream: events, then the CallResult."""
    if isinstance(goal, routed.Routed):
        goal.progress = progress
        return routed.stream(goal)
    if goal.failed:
        return iter([goal.failed])
    return client.stream(goal.config, prompt, progress)


def _via(goal):
    return goal if isinstance(goal, routed.Routed) else None


def run_once(request, goal, prompt: Prompt, template: dict | None = None) -> SandboxRun:
    result = called(goal, prompt)
    run = new_run(request.user, first_model(goal), prompt, template=template)
    return finish(run, result, request, via=_via(goal))


def compare(
    request, columns: list[tuple[Target, Prompt]], template: dict | None = None
) -> list[SandboxRun]:
    """Run each column (a model with its own parameters) at once; one failure hides
    nothing. The runs share a compare group: History shows them as one entry."""
    group = uuid.uuid4()

    with ThreadPoolExecutor(max_workers=len(columns)) as pool:
        results = list(pool.map(lambda column: called(*column), columns))
    return [
        finish(new_run(request.user, first_model(g), p, group=group, column=i, template=template),
               r, request, via=_via(g))
        for i, ((g, p), r) in enumerate(zip(columns, results, strict=True))
    ]  # fmt: skip
