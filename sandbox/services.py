"""Run prompts against saved models and keep every run. Writes SandboxRun rows only."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from django.db.models import Prefetch

from integrations import services
from integrations.llm import client
from integrations.llm.config import CallResult, LLMConfig, Prompt
from integrations.llm.errors import LLMError
from integrations.models import CustomModel, IntegrationHeader
from sandbox.models import RunStatus, SandboxRun, cost_of

RAW_EXCERPT_LIMIT = 16 * 1024


def usable_models():
    """Enabled models of enabled integrations, with all a call needs in two queries."""
    return (
        CustomModel.objects.filter(enabled=True, integration__enabled=True)
        .select_related("integration__auth_profile")
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


def finish(run: SandboxRun, result: CallResult, stopped: bool = False) -> SandboxRun:
    """Copy a result onto the run and store it (one INSERT)."""
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
    return run


def config_or_error(model: CustomModel) -> tuple[LLMConfig | None, CallResult | None]:
    try:
        return services.config_for(model.integration, model), None
    except LLMError as exc:
        return None, CallResult(ok=False, error=exc)


def run_once(user, model: CustomModel, prompt: Prompt) -> SandboxRun:
    config, failed = config_or_error(model)
    result = failed or client.call(config, prompt)
    return finish(new_run(user, model, prompt), result)


def compare(user, models: list[CustomModel], prompt: Prompt) -> list[SandboxRun]:
    """Run the same prompt against several models at once; one failure hides nothing."""
    group = uuid.uuid4()
    configs = [config_or_error(m) for m in models]  # database work stays on this thread

    def one(pair):
        config, failed = pair
        return failed or client.call(config, prompt)

    with ThreadPoolExecutor(max_workers=len(models)) as pool:
        results = list(pool.map(one, configs))
    return [
        finish(new_run(user, m, prompt, group=group), r)
        for m, r in zip(models, results, strict=True)
    ]
