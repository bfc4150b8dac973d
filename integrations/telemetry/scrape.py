"""Series read fresh at each scrape, from where the truth is kept, not from a worker's
memory: target health from the shared cooldown records, what each key has left from the
limit counters, the configuration generation, and the experiments by state. A worker
that restarted, or never served the call that changed them, still reports them right.
"""

from __future__ import annotations

import time

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

from integrations import callcache, services
from integrations.gateway import cooldowns, limits
from integrations.models import CustomModel, GatewayKey
from integrations.telemetry import metrics

# litellm_deployment_state: 0 healthy, 1 partial outage (failing or being probed),
# 2 complete outage (cooling down: calls skip it).
HEALTHY, PARTIAL, OUTAGE = 0, 1, 2


class Collector:
    def collect(self):
        yield self._deployments()
        yield from self._keys()
        yield InfoMetricFamily(
            "byo_config_generation",
            "The configuration generation every worker answers from.",
            value={"generation": callcache.generation()},
        )
        yield from self._experiments()

    def _deployments(self):
        family = GaugeMetricFamily(
            "litellm_deployment_state",
            "Each model's state: 0 healthy, 1 partial outage, 2 complete outage.",
            labels=metrics.DEPLOYMENT,
        )
        models = list(CustomModel.objects.filter(enabled=True).values_list("pk", "name"))
        health, _ = cooldowns.read([pk for pk, _ in models])
        now = time.time()
        for pk, name in models:
            h = health[pk]
            state = OUTAGE if h.cooling(now) else PARTIAL if h.recorded else HEALTHY
            goal = services.target(pk)
            config = goal.config if goal is not None else None
            family.add_metric(metrics.safe(metrics.deployment(name, pk, config)), state)
        return family

    def _keys(self):
        labels = ["hashed_api_key", "api_key_alias"]
        budget = GaugeMetricFamily(
            "litellm_remaining_api_key_budget_metric",
            "USD left in a key's monthly budget, holds of calls in flight taken out.",
            labels=labels,
        )
        requests = GaugeMetricFamily(
            "litellm_remaining_api_key_requests_for_model",
            "Requests a key has left this minute (its requests-per-minute limit).",
            labels=labels,
        )
        tokens = GaugeMetricFamily(
            "litellm_remaining_api_key_tokens_for_model",
            "Tokens a key has left this minute (its tokens-per-minute limit).",
            labels=labels,
        )
        limited = GatewayKey.objects.filter(revoked_at__isnull=True).exclude(
            monthly_budget__isnull=True, rpm__isnull=True, tpm__isnull=True
        )
        for key in limited:
            money, calls, units = limits.left(key)
            ids = metrics.safe([key.digest, key.name])
            if money is not None:
                budget.add_metric(ids, float(money))
            if calls is not None:
                requests.add_metric(ids, calls)
            if units is not None:
                tokens.add_metric(ids, units)
        yield from (budget, requests, tokens)

    def _experiments(self):
        from django.db.models import Count

        from sandbox.models import Experiment, ExperimentStatus

        family = GaugeMetricFamily("byo_experiments", "Experiments by state.", labels=["status"])
        counts = dict(Experiment.objects.values_list("status").annotate(n=Count("pk")))
        for status in ExperimentStatus.values:
            family.add_metric([status], counts.get(status, 0))
        yield family
