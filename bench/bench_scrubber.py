"""7. The scrubber's cost: per streamed delta, per whole reply, and to build one.

A stream's every delta passes through the scrubber, so its cost per delta is what a
streamed reply pays per token. Measured for three keys (a vendor-prefixed OpenAI-style
key, an Anthropic-style one, and a 32-character key with no vendor prefix, which holds a
reply's words back until they end) beside no secrets at all, on a reply of 2,000 word
deltas.

Usage: python bench_scrubber.py
"""

from __future__ import annotations

import time

from common import save, table

from integrations.llm.scrubber import Scrubber

KEYS = {
    "none": (),
    "sk-proj- key": ("sk-proj-" + "Ab3dE_fGhIjK9lMnOpQrStUvWxYz0123456789abcdEFGHijklmn" * 3,),
    "sk-ant- key": ("sk-ant-api03-" + "Zz9yXw8vUt7sRq6pOn5mLk4jIh3gFe2dCb1a" * 3 + "-AbCdEfAA",),
    "no prefix": ("Qm7xT2vK9pL4wR8zN3bY6cH1jF5gD0sA",),
}
WORDS = [" The", " answer", " is", " forty", "-two", ",", " as", " computed", ".", "\n"] * 200


def per_delta(scrubber: Scrubber) -> float:
    best = float("inf")
    for _ in range(5):
        stream = scrubber.stream()
        started = time.perf_counter()
        for word in WORDS:
            stream.feed(word)
        stream.flush()
        best = min(best, (time.perf_counter() - started) / len(WORDS))
    return best * 1e6


def whole(scrubber: Scrubber) -> float:
    text = "".join(WORDS)
    started = time.perf_counter()
    for _ in range(20):
        scrubber.text(text)
    return (time.perf_counter() - started) / 20 * 1e6


def main() -> dict:
    rows, results = [], {}
    for name, secrets in KEYS.items():
        started = time.perf_counter()
        scrubber = Scrubber(secrets)
        built = (time.perf_counter() - started) * 1000
        results[name] = {"per_delta_us": per_delta(scrubber), "reply_us": whole(scrubber),
                         "build_ms": built}  # fmt: skip
        r = results[name]
        rows.append([name, f"{r['per_delta_us']:.2f}", f"{r['reply_us']:.0f}", f"{built:.1f}"])
    table(
        "The scrubber: µs per streamed delta, µs per 2,000-word reply, ms to build",
        rows,
        ["secrets", "per delta", "per reply", "build"],
    )
    save("scrubber", results)
    return results


if __name__ == "__main__":
    main()
