"""The built-in demo upstream: an OpenAI-compatible endpoint served by the console itself.

It exists so a newcomer can try the whole flow without an API key. It answers
deterministically, counts tokens as words, honours max_tokens and streams. It is
reachable only when DEMO_UPSTREAM_ENABLED is on (the default in dev mode only).
"""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

DEMO_MODELS = ("demo-small", "demo-large")
DEMO_KEY_PREFIX = "demo-"
FILLER_TEXT = (
    "This answer comes from the console's built-in demo upstream. It counts one token per "
    "word and stops early when max_tokens runs out, so you can see usage and finish reasons "
    "change as you adjust the parameters."
)
FILLER = FILLER_TEXT.split()


def _error(status: int, message: str, code: str) -> JsonResponse:
    return JsonResponse({"error": {"message": message, "type": code, "code": code}}, status=status)


def _guard(request):
    if not settings.DEMO_UPSTREAM_ENABLED:
        raise Http404("The demo upstream is off.")
    auth = request.headers.get("Authorization", "")
    if not auth.startswith(f"Bearer {DEMO_KEY_PREFIX}"):
        return _error(
            401,
            "Invalid API key. The demo accepts any key starting with 'demo-'.",
            "invalid_api_key",
        )
    return None


def reply_words(messages: list[dict], model: str) -> list[str]:
    user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    if not isinstance(user, str):
        user = json.dumps(user)
    echo = user.split()[:20]
    return [f"[{model}]", "You", "said:"] + echo + ["—"] + FILLER


@csrf_exempt
@login_not_required
@require_POST
def chat_completions(request):
    refusal = _guard(request)
    if refusal:
        return refusal
    try:
        body = json.loads(request.body)
    except ValueError:
        return _error(400, "The body is not JSON.", "invalid_request_error")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return _error(400, "'messages' must be a list.", "invalid_request_error")
    model = body.get("model") or ""
    if model not in DEMO_MODELS:
        return _error(404, f"The model '{model}' does not exist.", "model_not_found")
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 256
    if not isinstance(max_tokens, int) or max_tokens < 1:
        return _error(400, "max_tokens must be a positive integer.", "invalid_request_error")
    words = reply_words(body["messages"], model)
    finish = "length" if len(words) > max_tokens else "stop"
    words = words[:max_tokens]
    prompt_tokens = sum(len(str(m.get("content", "")).split()) + 3 for m in body["messages"])
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(words),
        "total_tokens": prompt_tokens + len(words),
    }
    created = int(time.time())
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingHttpResponse(
            _stream(model, words, finish, usage if include_usage else None, created),
            content_type="text/event-stream",
        )
    return JsonResponse(
        {
            "id": f"chatcmpl-demo-{created}",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " ".join(words)},
                    "finish_reason": finish,
                }
            ],
            "usage": usage,
        }
    )


def _stream(model, words, finish, usage, created):
    base = {
        "id": f"chatcmpl-demo-{created}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }
    for i, word in enumerate(words):
        delta = {"content": word if i == 0 else " " + word}
        if i == 0:
            delta["role"] = "assistant"
        chunk = base | {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        yield f"data: {json.dumps(chunk)}\n\n"
        time.sleep(0.02)
    yield f"data: {json.dumps(base | {'choices': [{'index': 0, 'delta': {}, 'finish_reason': finish}]})}\n\n"
    if usage:
        yield f"data: {json.dumps(base | {'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"


@login_not_required
@require_GET
def models(request):
    refusal = _guard(request)
    if refusal:
        return refusal
    return JsonResponse(
        {
            "object": "list",
            "data": [{"id": m, "object": "model", "owned_by": "demo"} for m in DEMO_MODELS],
        }
    )
