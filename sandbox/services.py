"""Run prompts against saved models and keep every run. Writes SandboxRun rows only."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db.models import Prefetch

from integrations import audit, callcache, services
from integrations.llm import client
from integrations.llm.config import CallResult, LLMConfig, Prompt
from integrations.llm.errors import LLMError
from integrations.models import AuditAction, CustomModel, IntegrationHeader
from sandbox.models import RunStatus, SandboxRun, cost_of

RAW_EXCERPT_LIMIT = 16 * 1024


def usable_models():
    """Enabled models of enabled integrations, with all a call needs in two queries."""
    return (
        CustomModel.objects.filter(enabled=True, integration__enabled=True)
        .select_related("integration__auth_profile__stored_secret")
        .prefetch_related(
            Prefetch("integration__headers", queryset=IntegrationHeader.objects.order_by("id"))
        )
        .order_by("integration__name", "name")
    )


def new_run(
    user, model: CustomModel, prompt: Prompt, streamed: bool = False, group=None
) -> SandboxRun:
    return SandboxRun(
        user=user,
        model=model,
        model_name=model.name,
        integration_name=model.integration.name,
        compare_group=group,
        system_prompt=prompt.system,
        user_prompt=prompt.user,
        parameters=prompt.params,
        streamed=streamed,
    )


def finish(run: SandboxRun, result: CallResult, request=None, stopped: bool = False) -> SandboxRun:
    """Copy a result onto the run, store it and audit it: every run ends here."""
    run.reply = result.content
    run.finish_reason = result.finish_reason
    run.prompt_tokens = result.usage.prompt_tokens
    run.completion_tokens = result.usage.completion_tokens
    run.total_tokens = result.usage.total_tokens
    run.latency_ms = result.latency_ms
    run.ttft_ms = result.ttft_ms
    run.status_code = result.status_code
    run.streamed = result.streamed
    run.request = result.request
    run.raw_excerpt = (result.raw or "")[:RAW_EXCERPT_LIMIT]
    run.cost = cost_of(run.model, run.prompt_tokens, run.completion_tokens)
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
    how = " (streamed)" if run.streamed else ""
    audit.record(
        request, AuditAction.SANDBOX_RUN, run, detail=f"{run.model_name}: {run.status}{how}"
    )
    return run


@dataclass
class Target:
    """A model ready to call: its config, or the error that stops the call (a bad secret)."""

    model: CustomModel
    config: LLMConfig | None = None
    failed: CallResult | None = None


def target(model_pk) -> Target | None:
    """Return an enabled model ready to call, or None if there is none by that id."""
    cached = callcache.get(model_pk)
    if cached is not None:
        return Target(*cached)
    at_generation = callcache.generation() if callcache.enabled() else 0  # read before loading
    model = usable_models().filter(pk=model_pk).first()
    if model is None:
        return None
    try:
        config = services.config_for(model.integration, model)
    except LLMError as exc:
        return Target(model, failed=CallResult(ok=False, error=exc))
    callcache.put(model, config, at_generation)
    return Target(model, config)


def run_once(request, goal: Target, prompt: Prompt) -> SandboxRun:
    result = goal.failed or client.call(goal.config, prompt)
    return finish(new_run(request.user, goal.model, prompt), result, request)


def compare(request, goals: list[Target], prompt: Prompt) -> list[SandboxRun]:
    """Run the same prompt against several models at once; one failure hides nothing."""
    group = uuid.uuid4()

    def one(goal: Target) -> CallResult:
        return goal.failed or client.call(goal.config, prompt)

    with ThreadPoolExecutor(max_workers=len(goals)) as pool:
        results = list(pool.map(one, goals))
    return [
        finish(new_run(request.user, g.model, prompt, group=group), r, request)
        for g, r in zip(goals, results, strict=True)
    ]
