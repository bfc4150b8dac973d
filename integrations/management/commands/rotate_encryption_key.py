"""Re-encrypt every stored secret with the first FIELD_ENCRYPTION_KEY.

Rotation: put the new key first and keep the old one after it
(FIELD_ENCRYPTION_KEY=new,old), run this, then drop the old key.
"""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast

from integrations.secrets import Ciphertext, SecretField, crypter


def secret_fields():
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, SecretField):
                yield model, field


class Command(BaseCommand):
    help = "Re-encrypt every secret with the first key of FIELD_ENCRYPTION_KEY and report counts."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")

    def handle(self, *args, dry_run: bool = False, **options):
        fernet = crypter()
        total_rotated = total_unreadable = 0
        with transaction.atomic():
            for model, field in secret_fields():
                rotated = unreadable = 0
                rows = (
                    model._default_manager.exclude(**{field.name: ""})
                    .exclude(**{f"{field.name}__isnull": True})
                    .annotate(_raw=Cast(field.name, TextField()))
                    .values_list("pk", "_raw")
                )
                for pk, raw in rows.iterator():
                    try:
                        new = fernet.rotate(raw.encode()).decode()
                    except InvalidToken:
                        unreadable += 1
                        self.stderr.write(f"unreadable: {model._meta.label} {pk} {field.name}")
                        continue
                    if not dry_run:
                        model._default_manager.filter(pk=pk).update(**{field.name: Ciphertext(new)})
                    rotated += 1
                self.stdout.write(
                    f"{model._meta.label}.{field.name}: {rotated} re-encrypted, {unreadable} unreadable"
                )
                total_rotated += rotated
                total_unreadable += unreadable
        verb = "would be re-encrypted" if dry_run else "re-encrypted"
        self.stdout.write(f"Total: {total_rotated} {verb}, {total_unreadable} unreadable.")
        if total_unreadable:
            raise CommandError(
                f"{total_unreadable} secret(s) unreadable: no configured key decrypts them; they were left "
                "unchanged. Restore the old key or re-enter them."
            )
