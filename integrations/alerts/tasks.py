"""Alert checks on the task queue: each check enqueues the next one ALERT_CHECK_SECONDS
later, so one running worker (`manage.py db_worker`) checks the rules every minute with
no cron. `manage.py check_alerts --schedule` starts the chain (`make run` does).

One chain at a time: the cache holds the token of the check that is due next, and a
check that finds another token there (a second chain, started while the cache was
away) ends its chain. A chain that stopped (every worker down for a while) lets the
token expire, and the next `--schedule` starts a new one.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections
from django.utils import timezone
from django_tasks import task

from integrations.alerts import checks

SLOT = "alerts-next-check"


@task()
def check_alerts(token: str = "") -> dict:
    try:
        return checks.check()
    finally:
        schedule(after=token)
        close_old_connections()


def schedule(after: str | None = None) -> bool:
    """Enqueue the next check; True if this call did. `after`: the token of the check
    that just ran (None: start a chain, unless one is alive)."""
    if not check_alerts.get_backend().supports_defer:
        return False  # a backend that runs tasks at once would check in a loop
    seconds = settings.ALERT_CHECK_SECONDS
    token, life = uuid.uuid4().hex, seconds * 3
    if after is None:
        if not cache.add(SLOT, token, timeout=life):
            return False
    else:
        if cache.get(SLOT) not in (after, None):
            return False  # another chain is the live one
        cache.set(SLOT, token, timeout=life)
    check_alerts.using(run_after=timezone.now() + timedelta(seconds=seconds)).enqueue(token)
    return True
