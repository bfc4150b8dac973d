"""Prepare a first login and the demo data. Safe to run again: it changes nothing twice."""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from integrations import services
from integrations.llm import inputs
from integrations.models import AuthKind, AuthProfile, CustomModel, Integration


class Command(BaseCommand):
    help = "Create the first admin account (password printed once) and the demo integration."

    def add_arguments(self, parser):
        parser.add_argument(
            "--username", default=os.environ.get("BOOTSTRAP_ADMIN_USERNAME", "admin")
        )
        parser.add_argument("--no-demo", action="store_true", help="Skip the demo data.")

    @transaction.atomic
    def handle(self, *args, username: str, no_demo: bool, **options):
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
        profile, _ = AuthProfile.objects.get_or_create(
            name="Demo key",
            defaults={
                "kind": AuthKind.BEARER,
                "token": "demo-console-key-0001",
                "created_by": admin,
            },
        )
        # The operator's own demo key, bound to the demo endpoint it was made for.
        services.remember_routes(profile, {inputs.route(settings.DEMO_BASE_URL)})
        integration, created = Integration.objects.get_or_create(
            name="Demo upstream",
            defaults={
                "description": "The console's built-in OpenAI-compatible demo endpoint (dev mode only).",
                "endpoint": settings.DEMO_BASE_URL,
                "auth_profile": profile,
                "timeout_seconds": 30,
                "created_by": admin,
            },
        )
        for name, model_id, description in (
            ("Demo small", "demo-small", "Answers quickly and deterministically."),
            ("Demo large", "demo-large", "Same answers, another name: try Compare."),
        ):
            CustomModel.objects.get_or_create(
                integration=integration,
                name=name,
                defaults={
                    "model_id": model_id,
                    "description": description,
                    "max_tokens": 128,
                    "temperature": 0.7,
                    "test_model_parameters": {"max_tokens": 32},
                    "price_input_per_mtok": "0.15",
                    "price_output_per_mtok": "0.60",
                    "created_by": admin,
                },
            )
        self.stdout.write(
            f"Demo data {'created' if created else 'present'}: integration 'Demo upstream' at "
            f"{settings.DEMO_BASE_URL} with models 'Demo small' and 'Demo large'."
        )
