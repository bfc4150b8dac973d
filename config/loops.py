"""What belongs to one event loop: clients whose connections, and primitives whose
waiters, are bound to the loop that made them. A server worker has one loop for its
life; tests and `async_to_sync` make many, and a closed loop's objects are dropped
when the next new loop asks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Hashable
from typing import Any

_owned: dict[asyncio.AbstractEventLoop, dict[Hashable, Any]] = {}
_lock = threading.Lock()


def loop_local(key: Hashable, make: Callable[[], Any]) -> Any:
    """The running loop's object for `key`, made by `make()` on its first use."""
    loop = asyncio.get_running_loop()
    table = _owned.get(loop)
    if table is None:
        with _lock:
            for stale in [other for other in _owned if other.is_closed()]:
                del _owned[stale]
            table = _owned.setdefault(loop, {})
    value = table.get(key)
    if value is None:
        value = table[key] = make()
    return value
