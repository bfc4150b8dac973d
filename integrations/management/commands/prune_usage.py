"""Delete usage rows older than the retention (USAGE_RETENTION_DAYS; daily totals stay)
and stored /v1/responses answers past their expiry (RESPONSES_RETENTION_DAYS)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from integrations.models import StoredResponse, UsageRecord


class Command(BaseCommand):
    help = "Delete usage rows older than USAGE_RETENTION_DAYS (the usage page's totals stay)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=settings.USAGE_RETENTION_DAYS)

    def handle(self, *args, days: int, **options):
        cutoff = timezone.now() - timedelta(days=days)
        deleted, _ = UsageRecord.objects.filter(created_at__lt=cutoff).delete()
        self.stdout.write(f"Deleted {deleted} usage rows older than {days} days.")
        expired, _ = StoredResponse.objects.filter(expires_at__lt=timezone.now()).delete()
        self.stdout.write(f"Deleted {expired} stored responses past their expiry.")
