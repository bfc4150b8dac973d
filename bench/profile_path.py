"""Profile one console call path in-process (cProfile), to see what costs the milliseconds.

python bench/profile_path.py [api|sandbox|gateway] [N]
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import time

from common import (
    ENV,
    chat_payload,
    make_model,
    make_user,
    percentiles,
    prepare_database,
    sandbox_form,
    start_upstream,
)

ENV["ALLOWED_HOSTS"] = "testserver"
from django.conf import settings  # noqa: E402

settings.ALLOWED_HOSTS = ["testserver", "127.0.0.1"]

from django.test import Client  # noqa: E402

from tests.upstream import reply_load  # noqa: E402


def main(path: str, n: int) -> None:
    prepare_database()
    upstream = start_upstream(reply_load())
    user = make_user()
    model = make_model("Fast", f"{upstream.url}/v1")
    from integrations.team import tokens

    token = tokens.create(user, "profile")[1]
    from integrations.gateway import keys

    gateway_key = keys.create(user, "profile")[1]
    gateway_body = json.dumps(
        {"model": "Fast", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 20}
    )
    client = Client()
    client.force_login(user)
    chat = json.dumps(chat_payload(model))
    form = sandbox_form(model)

    def once():
        if path == "gateway":
            r = client.post(
                "/v1/chat/completions",
                gateway_body,
                content_type="application/json",
                headers={"Authorization": f"Bearer {gateway_key}"},
            )
        elif path == "api":
            r = client.post(
                "/api/v2/chat",
                chat,
                content_type="application/json",
                headers={"Authorization": f"Bearer {token}"},
            )
        else:
            r = client.post("/sandbox/run", form, headers={"HX-Request": "true"})
        assert r.status_code == 200, r.content[:300]

    for _ in range(30):
        once()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        once()
        times.append((time.perf_counter() - started) * 1000)
    print(path, "in-process ms:", percentiles(times))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        once()
    profiler.disable()
    pstats.Stats(profiler).sort_stats(
        sys.argv[3] if len(sys.argv) > 3 else "cumulative"
    ).print_stats(40)
    upstream.stop()


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else "api", int(sys.argv[2]) if len(sys.argv) > 2 else 200
    )
