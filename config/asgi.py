"""The ASGI application that production serves (config/gunicorn.conf.py).

Two Django handlers share one process:
- the console (pages, the REST API, the Sandbox) with settings.MIDDLEWARE: Django's WSGI
  handler, the whole request on one pool thread (config/asgi_pages.py), as fast as under
  `wsgi`;
- the gateway (/v1/) with settings.GATEWAY_MIDDLEWARE, which has no session, user, CSRF
  or messages to load, and whose calls wait on their upstream in the event loop. It skips
  the thread per request: under Django's full chain every call paid for a new thread and
  about a dozen hops onto it, and a 256-stream burst of 2 s calls took 3.5 s.
"""

import asyncio
import contextlib
import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
console = get_asgi_application()

from asgiref.sync import sync_to_async  # noqa: E402
from django.conf import settings  # noqa: E402  (after Django is set up)
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler, get_script_prefix  # noqa: E402
from django.urls import set_script_prefix  # noqa: E402

from config.asgi_pages import pages, read_body  # noqa: E402


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

    async def handle(self, scope, receive, send):
        """Django's ASGIHandler.handle without its two hops to a thread per call: the
        request_started and request_finished signals close database connections (and
        Django's cache connections, which here stay pooled) and reset the query log; a
        gateway call opens no database connection on the loop (a step that needs the database runs
        on a thread that closes its own: admission.off_loop). The response's closers
        (usage rows handed to the writer, the span's end) run here on the loop when the
        rows are written in the background; inline writes still close on a thread."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            await _closed(error_response)
            return

        async def process_request(request, send):
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # the client left mid-answer
                await self.send_response(response, send)
            return response

        # A client that leaves cancels the call (and its upstream request) at once.
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                with contextlib.suppress(RequestAborted):
                    task.result()
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            pass
        else:
            await _closed(response)
        body_file.close()

    async def read_body(self, receive):
        return await read_body(receive)


async def _closed(response) -> None:
    """Close a response: its closers on the loop when none of them writes to the
    database (usage rows go to the background writer), else on a thread."""
    if settings.USAGE_WRITE != "background":
        await sync_to_async(response.close)()
        return
    closers, response._resource_closers = response._resource_closers, []
    for closer in closers:
        try:
            closer()
        except Exception:  # as Django's close does: one failing closer stops no other
            logger.exception("Closing a gateway response failed")
    response.closed = True


logger = logging.getLogger(__name__)
gateway = GatewayHandler()


async def application(scope, receive, send):
    if scope["type"] != "http":
        await console(scope, receive, send)  # Django's handler declines what is not HTTP
    elif scope["path"].startswith(settings.GATEWAY_PREFIX):
        await gateway(scope, receive, send)
    else:
        await pages(scope, receive, send)
