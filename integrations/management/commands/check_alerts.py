"""Check the alert rules once (for cron), or start their checks on the task queue."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from integrations.alerts import checks, tasks


class Command(BaseCommand):
    help = "Check every enabled alert rule now and send what changed (cron: every minute)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--schedule",
            action="store_true",
            help="Instead, have the task queue check every ALERT_CHECK_SECONDS (db_worker runs them).",
        )

    def handle(self, *args, schedule: bool = False, **options):
        if schedule:
            started = tasks.schedule()
            self.stdout.write(
                "Alert checks scheduled." if started else "Alert checks already scheduled."
            )
            return
        totals = checks.check()
        self.stdout.write(
            f"{totals['opened']} opened, {totals['resolved']} resolved, {totals['sent']} messages sent."
        )
