"""The ASGI application that production serves (config/gunicorn.conf.py).

Two Django handlers share one process:
- the console (pages, the REST API, the Sandbox) with settings.MIDDLEWARE; its views are
  synchronous and each request gets a thread of its own, as asgiref arranges;
- the gateway (/v1/) with settings.GATEWAY_MIDDLEWARE, which has no session, user, CSRF
  or messages to load, and whose calls wait on their upstream in the event loop. It skips
  the thread per request: under Django's full chain every call paid for a new thread and
  about a dozen hops onto it, and a 256-stream burst of 2 s calls took 3.5 s.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
console = get_asgi_application()

from django.conf import settings  # noqa: E402  (after Django is set up)
from django.core.handlers.asgi import ASGIHandler  # noqa: E402


class GatewayHandler(ASGIHandler):
    """Django's ASGI handler with the gateway's own middleware list, and no per-request
    thread: what little must run on a thread (the request signals, closing the response)
    runs on asgiref's shared one, and the gateway's blocking steps on the loop's pool."""

    def load_middleware(self, is_async=False):
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.GATEWAY_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full

    async def __call__(self, scope, receive, send):
        await self.handle(scope, receive, send)


gateway = GatewayHandler()


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"].startswith(settings.GATEWAY_PREFIX):
        await gateway(scope, receive, send)
    else:
        await console(scope, receive, send)
