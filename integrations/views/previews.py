"""Endpoints that write nothing: resolved-URL preview and the endpoint's model list."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from integrations import services
from integrations.llm import inputs, preview
from integrations.llm.config import LLMConfig
from integrations.llm.errors import LLMError
from integrations.llm.protocols import ADAPTERS
from integrations.models import Integration, Protocol
from integrations.team.roles import editor_required


@require_GET
@editor_required
def endpoint_preview(request):
    endpoint = request.GET.get("endpoint", "").strip()
    protocol = request.GET.get("protocol", Protocol.OPENAI_CHAT)
    adapter = ADAPTERS.get(protocol, ADAPTERS[Protocol.OPENAI_CHAT])
    ctx: dict = {"endpoint": endpoint}
    if endpoint:
        try:
            inputs.parse_url(endpoint, "endpoint")
            base, warnings = adapter.normalize(endpoint)
            inputs.parse_url(base, "endpoint")
        except (inputs.InputError, ValueError) as exc:
            ctx["error"] = str(exc)
        else:
            config = LLMConfig(
                endpoint=base,
                protocol=protocol,
                model_id=request.GET.get("model_id", "") or "MODEL",
                deployment=request.GET.get("deployment", ""),
                api_version=request.GET.get("api_version", ""),
                kind="embeddings" if request.GET.get("kind") == "embeddings" else "chat",
            )
            try:
                ctx.update(resolved=adapter.url(config), warnings=warnings)
            except LLMError as exc:  # e.g. an embeddings model on Anthropic's protocol
                ctx["error"] = exc.message
    return render(request, "integrations/connection_form.html#url-preview", ctx)


@require_GET
@editor_required
def fetch_models(request, pk):
    integration = get_object_or_404(
        Integration.objects.select_related("auth_profile__stored_secret"), pk=pk
    )
    existing = set(integration.models.values_list("model_id", flat=True))
    ctx: dict = {"integration": integration}
    try:
        ids = preview.list_models(services.config_for(integration))
        ctx["available"] = [{"id": i, "added": i in existing} for i in ids]
    except LLMError as exc:
        ctx["error"] = exc
    return render(request, "integrations/integration_detail.html#fetched-models", ctx)
