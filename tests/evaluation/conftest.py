"""Two priced models on the local upstream, and tasks run where they are queued."""

from __future__ import annotations

import pytest

from integrations.models import CustomModel


@pytest.fixture
def two_models(make_integration):
    alpha = make_integration(
        name="Alpha", model_id="alpha", price_input_per_mtok=1, price_output_per_mtok=2
    )
    beta = CustomModel.objects.create(integration=alpha.integration, name="Beta", model_id="beta",
                                      price_input_per_mtok=3, price_output_per_mtok=6)  # fmt: skip
    return alpha, beta


@pytest.fixture
def immediate(settings):
    """Tasks run where they are queued, as a worker would run them."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
