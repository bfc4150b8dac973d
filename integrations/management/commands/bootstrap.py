"""Prepare a first login and the demo data. Safe to run again: it changes nothing twice."""

from __future__ import annotations

import os
import secrets
from dataclasses import replace
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from integrations import services, writes
from integrations.llm import inputs
from integrations.llm.config import AuthConfig, LLMConfig
from integrations.models import AuthKind, AuthProfile, Integration

DEMO = "Demo upstream"


class Command(BaseCommand):
    help = "Create the first admin account (password printed once) and the demo integration."

    def add_arguments(self, parser):
        parser.add_argument(
            "--username", default=os.environ.get("BOOTSTRAP_ADMIN_USERNAME", "admin")
        )
        parser.add_argument("--no-demo", action="store_true", help="Skip the demo data.")
        parser.add_argument(
            "--test-demo",
            action="store_true",
            help="Instead, wait for the console to serve, then test the demo models that were "
            "never tested (make run does, beside the server).",
        )

    def handle(self, *args, username: str, no_demo: bool, test_demo: bool = False, **options):
        if test_demo:
            self.test_demo()
            return
        with transaction.atomic():
            self.prepare(username, no_demo)

    def test_demo(self, wait: float = 60.0) -> None:
        """The demo's upstream is this console: once it answers, test each demo model that
        was never tested, so the catalog starts with real badges, not "Never tested"."""
        import time

        import httpx

        from integrations.models import CustomModel, TestStatus

        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{settings.DEMO_BASE_URL}/models", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            self.stderr.write("The console did not answer; the demo models stay untested.")
            return
        untested = CustomModel.objects.filter(
            integration__name=DEMO, last_test_status=TestStatus.NEVER
        ).select_related("integration__auth_profile__stored_secret")
        for model in untested:
            result, _ = writes.test_model(model)
            outcome = "passed" if result.ok else f"failed: {result.error.message}"
            self.stdout.write(f"Demo model {model.name}: its first test {outcome}.")

    def prepare(self, username: str, no_demo: bool) -> None:
        users = get_user_model()
        if not users.objects.filter(is_superuser=True).exists():
            password = os.environ.get("BOOTSTRAP_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            users.objects.create_superuser(username=username, email="", password=password)
            self.stdout.write(self.style.SUCCESS("First admin account created:"))
            self.stdout.write(f"    username: {username}")
            self.stdout.write(f"    password: {password}")
            self.stdout.write(
                f"    (shown once; change it with: python manage.py changepassword {username})"
            )
        else:
            self.stdout.write("An admin account exists already; no new login created.")
        if no_demo:
            return
        if not settings.DEMO_UPSTREAM_ENABLED:
            self.stdout.write("Demo upstream is off (production); no demo data created.")
            return
        admin = users.objects.filter(is_superuser=True).order_by("pk").first()
        state = self.demo(writes.Actor(admin))
        self.stdout.write(
            f"Demo data {state}: integration 'Demo upstream' at "
            f"{settings.DEMO_BASE_URL} with models 'Demo small' and 'Demo large'."
        )

    def demo(self, actor) -> str:
        """Write the demo integration through the write path, or move it to the port the
        console now serves on; return what was done."""
        existing = Integration.objects.filter(name=DEMO).first()
        if existing is not None:
            return self.follow_port(existing, actor)
        route = inputs.route(settings.DEMO_BASE_URL)
        profile = AuthProfile.objects.filter(name="Demo key").first()
        auth = AuthConfig(kind=AuthKind.BEARER, token="demo-console-key-0001").bound_to(route)
        if profile is not None:
            auth = services.auth_config(profile).bound_to(route)
        config = LLMConfig(endpoint=settings.DEMO_BASE_URL, model_id="demo-small", auth=auth)
        integration = None
        for name, model_id, description in (
            ("Demo small", "demo-small", "Answers quickly and deterministically."),
            ("Demo large", "demo-large", "Same answers, another name: try Compare."),
        ):
            change = writes.ConnectionChange(
                config=replace(config, model_id=model_id),
                test_params={"max_tokens": 32},
                integration=integration,
                model_fields={
                    "name": name,
                    "model_id": model_id,
                    "description": description,
                    "max_tokens": 128,
                    "temperature": 0.7,
                    "test_model_parameters": {"max_tokens": 32},
                    "price_input_per_mtok": Decimal("0.15"),
                    "price_output_per_mtok": Decimal("0.60"),
                },
            )
            if integration is None:
                change.integration_fields = {
                    "name": DEMO,
                    "description": "The console's built-in OpenAI-compatible demo endpoint "
                    "(dev mode only).",
                    "endpoint": settings.DEMO_BASE_URL,
                    "timeout_seconds": 30,
                }
                change.profile = profile
                change.new_profile_name = "" if profile else "Demo key"
            # The demo's upstream is this console, which is not serving yet: it ships proven.
            integration = writes.save_connection(
                change, request=actor, proof=writes.SHIPPED
            ).integration
        return "created"

    def follow_port(self, integration: Integration, actor) -> str:
        """`make run PORT=8080` after a first run on 8000: the demo's upstream is this
        console, so its endpoint follows. An endpoint someone pointed elsewhere stays."""
        new, old = settings.DEMO_BASE_URL, integration.endpoint
        if (
            old == new
            or not old.endswith("/demo/v1")
            or inputs.parse_url(old).host
            not in (
                "127.0.0.1",
                "localhost",
            )
        ):
            return "present"
        model = integration.models.order_by("name").first()
        config = services.config_for(integration, model)
        route = inputs.route(new)
        config = replace(config, endpoint=new, auth=config.auth.bound_to(route))
        change = writes.ConnectionChange(
            config=config,
            test_params={"max_tokens": 32},
            integration=integration,
            test_model=model,
            integration_fields={"endpoint": new},
            profile=integration.auth_profile,
        )
        writes.save_connection(change, request=actor, proof=writes.SHIPPED)
        return f"moved from {old}"
