"""The OpenAI-compatible gateway: /v1/chat/completions and /v1/models for apps, with
scoped keys, per-minute limits, monthly budgets and metered usage.

keys.py      create, authenticate and scope gateway keys (stored hashed)
wire.py      OpenAI's request and response shapes <-> Prompt and CallResult
limits.py    requests and tokens per minute (the one limiter), monthly budgets
metering.py  usage rows, written after the response has gone
views.py     the /v1 endpoints; pages.py the keys and usage pages
"""
