"""Write integrations, models and auth profiles as JSON; secrets only when asked, encrypted."""

from __future__ import annotations

import getpass
import json
import os

from django.core.management.base import BaseCommand, CommandError

from integrations import transfer


class Command(BaseCommand):
    help = "Export integrations, models and auth profiles as JSON (secrets left out by default)."

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", help="File to write (default: standard output).")
        parser.add_argument(
            "--include-secrets",
            action="store_true",
            help="Include secrets, encrypted with a passphrase (EXPORT_PASSPHRASE or asked).",
        )

    def handle(self, *args, output=None, include_secrets=False, **options):
        passphrase = ""
        if include_secrets:
            passphrase = os.environ.get("EXPORT_PASSPHRASE") or getpass.getpass(
                "Passphrase for the secrets: "
            )
        try:
            data = transfer.export(include_secrets, passphrase)
        except transfer.TransferError as exc:
            raise CommandError(str(exc)) from exc
        text = json.dumps(data, indent=2)
        if output:
            with open(output, "w") as handle:
                handle.write(text + "\n")
            self.stderr.write(
                f"Exported {len(data['integrations'])} integrations and {len(data['auth_profiles'])} "
                f"auth profiles to {output} (secrets {data['secrets']})."
            )
        else:
            self.stdout.write(text)
