"""Many callers at once through the openai SDK: each outcome is "ok" or the 429."""

from __future__ import annotations

import threading

import openai


def burst(sdk, count: int, content: str, **params) -> list:
    outcomes: list = []

    def one():
        try:
            sdk.chat.completions.create(
                model="Model A", messages=[{"role": "user", "content": content}], **params
            )
            outcomes.append("ok")
        except openai.RateLimitError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes
