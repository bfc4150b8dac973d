"""Re-test every enabled model (for cron): record the tests, print a table, fail if any fails."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from integrations import writes
from integrations.gateway import routing
from integrations.models import CustomModel


class Command(BaseCommand):
    help = "Test every enabled model through the console's client; exit 1 if any fails."

    def add_arguments(self, parser):
        parser.add_argument(
            "--disable-failing", action="store_true", help="Disable models that fail."
        )

    def handle(self, *args, disable_failing: bool = False, **options):
        models = (
            CustomModel.objects.filter(enabled=True, integration__enabled=True)
            .select_related("integration__auth_profile__stored_secret")
            .order_by("integration__name", "name")
        )
        rows, failed = [], 0
        for model in models:
            result, _ = writes.test_model(model)
            routing.observe_check(model.pk, result)  # routes see what the check saw
            if result.ok:
                outcome = "ok"
            else:
                failed += 1
                outcome = f"FAILED {result.error.kind}: {result.error.message}"
                if disable_failing:
                    writes.set_enabled(model, False, None)
                    outcome += " (disabled)"
            rows.append((model.integration.name, model.name, f"{result.latency_ms} ms", outcome))
        header = ("Integration", "Model", "Latency", "Result")
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
        for row in [header, *rows]:
            self.stdout.write(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            )
        self.stdout.write(f"{len(rows) - failed} passed, {failed} failed")
        if failed:
            raise CommandError(f"{failed} model(s) failed their test.")
