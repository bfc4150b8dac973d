"""Stop a streaming Sandbox column on the server, not by dropping its connection: the
stream then ends with the text the browser was shown, its timings and usage, and the
saved run holds exactly that text. A flag in the shared cache, keyed by the person and
a stream id the page chose, so that any worker serving the stream sees it."""

from __future__ import annotations

import time

from django.core.cache import cache

CHECK_EVERY_S = 0.05  # a Redis read per 50 ms of tokens, not per token
KEPT_S = 10 * 60
MAX_IDS = 8


def _key(user_pk, stream_id: str) -> str:
    return f"sandbox-stop:{user_pk}:{stream_id}"


def request(user_pk, stream_ids: list[str]) -> int:
    """Flag the person's streams to stop; returns how many ids were taken."""
    ids = [s for s in stream_ids if s and len(s) <= 64][:MAX_IDS]
    if ids:
        cache.set_many({_key(user_pk, s): 1 for s in ids}, KEPT_S)
    return len(ids)


class Watch:
    """Whether the stream `stream_id` of this person was asked to stop, read at most
    every CHECK_EVERY_S."""

    def __init__(self, user_pk, stream_id: str):
        self.key = _key(user_pk, stream_id) if stream_id and len(stream_id) <= 64 else None
        self.checked = time.monotonic()

    def stopped(self) -> bool:
        if self.key is None:
            return False
        now = time.monotonic()
        if now - self.checked < CHECK_EVERY_S:
            return False
        self.checked = now
        return bool(cache.get(self.key))
