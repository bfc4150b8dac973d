"""Prometheus series for every call, named as LiteLLM names them where the meaning is the
same (so its Grafana dashboards carry over), and `byo_…` for what LiteLLM lacks.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set before any worker starts
(config/gunicorn.conf.py): each worker writes its counts to files there and a scrape sums
them, whichever worker answers it. Without it (runserver, tests) the counts live in the
process. The series that are true only at the moment of a scrape (target health, budget
left) are read then, by integrations/telemetry/scrape.py.

Everything here is called after the answer is decided, never on the way to it, and costs
a few microseconds: a lookup per label set and an add.
"""

from __future__ import annotations

import functools
import os
from urllib.parse import urlsplit

from django.conf import settings
from prometheus_client import Counter, Gauge, Histogram

if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # A task worker or a manage command beside gunicorn counts into the same place.
    os.makedirs(directory, exist_ok=True)

# Seconds. LiteLLM's latency buckets, thinned; the overhead's are finer.
LATENCY = (
    0.005,
    0.0125,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2,
    3,
    5,
    7.5,
    10,
    15,
    20,
    30,
    60,
    120,
    300,
)
OVERHEAD = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)

CALLER = ["model", "requested_model", "api_key_alias", "hashed_api_key", "user"]
TIMED = ["model", "requested_model", "api_key_alias", "hashed_api_key"]
DEPLOYMENT = ["litellm_model_name", "model_id", "api_base", "api_provider"]
FALLBACK = ["requested_model", "fallback_model", "api_key_alias", "hashed_api_key"]

requests = Counter(
    "litellm_proxy_total_requests_metric",
    "Gateway calls, refusals included, by the status the caller was answered.",
    [*CALLER, "status_code"],
)
failed = Counter(
    "litellm_proxy_failed_requests_metric",
    "Gateway calls that did not end in an answer: refusals and upstream failures.",
    [*CALLER, "exception_status", "exception_class"],
)
input_tokens = Counter("litellm_input_tokens_metric", "Prompt tokens.", CALLER)
output_tokens = Counter("litellm_output_tokens_metric", "Completion tokens.", CALLER)
spend = Counter("litellm_spend_metric", "Spend in USD, from the models' prices.", CALLER)
total_latency = Histogram(
    "litellm_request_total_latency_metric",
    "Seconds from the request's arrival to its last byte.",
    TIMED,
    buckets=LATENCY,
)
api_latency = Histogram(
    "litellm_llm_api_latency_metric",
    "Seconds spent waiting on upstreams (every attempt of a routed call).",
    TIMED,
    buckets=LATENCY,
)
first_token = Histogram(
    "litellm_llm_api_time_to_first_token_metric",
    "Seconds to a stream's first token.",
    TIMED,
    buckets=LATENCY,
)
overhead = Histogram(
    "litellm_overhead_latency_metric",
    "Seconds the gateway added: total latency less the time spent on upstreams.",
    TIMED,
    buckets=OVERHEAD,
)
cooled_down = Counter(
    "litellm_deployment_cooled_down",
    "Times a route target started a cooldown.",
    [*DEPLOYMENT, "exception_status"],
)
successful_fallbacks = Counter(
    "litellm_deployment_successful_fallbacks",
    "Routed calls answered by a target after another failed.",
    FALLBACK,
)
failed_fallbacks = Counter(
    "litellm_deployment_failed_fallbacks",
    "Routed calls that fell back and still failed.",
    FALLBACK,
)
remaining_requests = Gauge(
    "litellm_remaining_requests_metric",
    "Requests the upstream says are left in its window (x-ratelimit-remaining-requests).",
    ["model_group", *DEPLOYMENT],
    multiprocess_mode="mostrecent",
)
remaining_tokens = Gauge(
    "litellm_remaining_tokens_metric",
    "Tokens the upstream says are left in its window (x-ratelimit-remaining-tokens).",
    ["model_group", *DEPLOYMENT],
    multiprocess_mode="mostrecent",
)
in_flight = Gauge(
    "litellm_in_flight_requests",
    "Gateway requests being served now, over every worker.",
    multiprocess_mode="livesum",
)

tests = Counter(
    "byo_tests_total", "Connection tests run (Test then Save, checks).", ["protocol", "outcome"]
)
config_changes = Counter("byo_config_changes_total", "New configuration generations.")
usage_queue = Gauge(
    "byo_usage_queue_depth",
    "Usage rows waiting for the writer, over every worker.",
    multiprocess_mode="livesum",
)
usage_written = Counter("byo_usage_rows_written_total", "Usage rows written to the database.")
usage_dropped = Counter("byo_usage_rows_dropped_total", "Usage rows the database refused.")
runs = Counter(
    "byo_runs_total",
    "Sandbox runs and evaluation rows, by how they ended (ok, error, stopped).",
    ["source", "model", "outcome"],
)
run_latency = Histogram(
    "byo_run_latency_seconds",
    "Sandbox runs' and evaluation rows' latency.",
    ["source"],
    buckets=LATENCY,
)
alerts = Counter("byo_alerts_sent_total", "Alert messages delivered.", ["channel", "state"])
alert_failures = Counter(
    "byo_alert_failures_total", "Alert deliveries that failed for good.", ["channel"]
)


OTHER = "(other)"  # requested_model of a refusal for a name no model has

_children: dict = {}


def child(metric, *labels):
    """metric.labels(*labels), remembered: prometheus_client checks and converts the
    values and takes a lock on each lookup, a dozen times a call."""
    key = (metric, labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*safe(labels))
    return found


def safe(labels) -> list[str]:
    """Label values as text the exposition can encode: a name with a lone surrogate
    (saved by someone, or sent by an upstream) would otherwise fail every scrape."""
    out = []
    for value in labels:
        value = str(value)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
        out.append(value)
    return out


def observe(row, result=None, upstream_ms: int | None = None, config=None) -> None:
    """Count one usage row: a gateway call (refused or answered), a Sandbox run or an
    evaluation row. `result`, `upstream_ms` and `config`: the gateway's last upstream
    answer, the time every attempt waited on an upstream, and the answering target's
    configuration."""
    if not settings.METRICS_ENABLED:
        return
    if row.source != "gateway":
        _run(row)
        return
    key = row.key if row.key_id is not None else None
    alias, hashed = (key.name, key.digest) if key is not None else ("", "")
    user = row.user.username if row.user_id is not None else ""
    requested = row.route or row.model_name
    if row.refused and row.model_id is None and not row.route:
        # A name that matched no model: callers, keyed or not, choose it freely, and each
        # new one would be a new series for good (and memory here). One bucket for all.
        requested = OTHER
    model = "" if row.refused else row.model_name
    caller = (model, requested, alias, hashed, user)
    child(requests, *caller, str(row.status_code or (200 if row.ok else 500))).inc()
    if not row.ok:
        child(failed, *caller, str(row.status_code or ""), row.error_kind or "error").inc()
    if row.refused:
        return
    if row.prompt_tokens:
        child(input_tokens, *caller).inc(row.prompt_tokens)
    if row.completion_tokens:
        child(output_tokens, *caller).inc(row.completion_tokens)
    if row.cost:
        child(spend, *caller).inc(float(row.cost))
    timed = caller[:4]
    total = (row.latency_ms or 0) / 1000
    child(total_latency, *timed).observe(total)
    if upstream_ms is not None:
        child(api_latency, *timed).observe(upstream_ms / 1000)
        child(overhead, *timed).observe(max(0.0, total - upstream_ms / 1000))
    if row.ttft_ms is not None and row.streamed:
        child(first_token, *timed).observe(row.ttft_ms / 1000)
    if row.fallbacks:
        counter = successful_fallbacks if row.ok else failed_fallbacks
        child(counter, requested, row.model_name, alias, hashed).inc()
    if result is not None and result.remaining and config is not None:
        _remaining(row, config, result.remaining)


def _run(row) -> None:
    outcome = "ok" if row.ok else "stopped" if row.error_kind == "stopped" else "error"
    child(runs, row.source, row.model_name, outcome).inc()
    if row.latency_ms is not None:
        child(run_latency, row.source).observe(row.latency_ms / 1000)


def deployment(name: str, pk, config) -> tuple:
    """The labels LiteLLM gives a deployment: name, id, origin, provider."""
    if config is None:
        return (name, str(pk), "", "")
    return (name, str(pk), api_base(config.endpoint), config.protocol)


def _remaining(row, config, remaining: tuple) -> None:
    labels = (row.route or row.model_name, *deployment(row.model_name, row.model_id, config))
    requests_left, tokens_left = remaining
    if requests_left is not None:
        child(remaining_requests, *labels).set(requests_left)
    if tokens_left is not None:
        child(remaining_tokens, *labels).set(tokens_left)


def cooldown_started(goal, exception_status: int | None) -> None:
    """A route target's failure started (or pushed out) a cooldown."""
    labels = deployment(goal.model.name, goal.model.pk, goal.config)
    child(cooled_down, *labels, str(exception_status or "")).inc()


def tested(protocol: str, ok: bool) -> None:
    child(tests, protocol, "passed" if ok else "failed").inc()


@functools.lru_cache(maxsize=1024)
def api_base(url: str) -> str:
    """An endpoint's origin only: no path, query or credentials reach a label."""
    try:
        parts = urlsplit(url or "")
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return ""
    return f"{parts.scheme}://{host}{port}" if host else ""
