"""What the gateway answers when something of its own fails: the door's error shape,
never Django's HTML page, and never a stream cut without its end.

A shared cache (Redis) that is down is a 503 the caller may retry: the limits cannot be
checked, so the call is refused (limits fail closed). Anything else is a 500 that says
it was logged. Metering after a call has been answered is the console's problem, not
the caller's: if it fails, the answer still goes out whole, and the failure is logged.
"""

from __future__ import annotations

import functools
import logging

from asgiref.sync import iscoroutinefunction
from django.http import JsonResponse

logger = logging.getLogger("integrations.gateway")


def _cache_down(exc: BaseException) -> bool:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover - redis is a dependency
        return False
    return isinstance(exc, RedisError | ConnectionError | TimeoutError)


def failure(exc: BaseException, path: str, door=None) -> JsonResponse:
    from integrations.gateway.doors import OPENAI

    door = door or OPENAI
    if _cache_down(exc):
        logger.error("The shared cache is unreachable on %s: %s", path, exc)
        return door.error(
            503,
            "The console's shared cache is unreachable, so this key's limits cannot be "
            "checked; the call was refused. Retry shortly.",
            "api_error",
            "service_unavailable",
            headers={"Retry-After": "5"},
        )
    logger.exception("Gateway error on %s", path)
    return door.error(
        500, "The gateway failed on its side; it was logged.", "api_error", "internal_error"
    )


def answers_in_shape(view=None, *, door=None):
    """Every exception a gateway view raises answers in its door's error shape (OpenAI's
    unless another door is named)."""
    if view is None:
        return functools.partial(answers_in_shape, door=door)
    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def guarded(request, *args, **kwargs):
            try:
                return await view(request, *args, **kwargs)
            except Exception as exc:
                return failure(exc, request.path, door)

        return guarded

    @functools.wraps(view)
    def guarded_sync(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except Exception as exc:
            return failure(exc, request.path, door)

    return guarded_sync


def afterwards(step, *args, what: str = "metering"):
    """Run a step that follows an answer (metering, settling a budget); log its failure."""
    try:
        return step(*args)
    except Exception:
        logger.exception("The gateway's %s failed after a call", what)
        return None
