"""Import an export: idempotent by name; reports created, updated, skipped and missing secrets."""

from __future__ import annotations

import getpass
import json
import os
import sys

from django.core.management.base import BaseCommand, CommandError

from integrations import transfer


class Command(BaseCommand):
    help = "Import integrations, models and auth profiles from an export_llms JSON file."

    def add_arguments(self, parser):
        parser.add_argument("file", help="The JSON file, or - for standard input.")
        parser.add_argument(
            "--no-input", action="store_true", help="Never ask for missing secrets."
        )

    def handle(self, *args, file: str, no_input: bool = False, **options):
        try:
            text = sys.stdin.read() if file == "-" else open(file).read()  # noqa: SIM115
            data = json.loads(text)
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        interactive = not no_input and sys.stdin.isatty() and file != "-"
        passphrase = os.environ.get("EXPORT_PASSPHRASE", "")
        if data.get("secrets") == "encrypted" and not passphrase and interactive:
            passphrase = getpass.getpass("Passphrase of the export: ")

        def ask(label: str) -> str | None:
            if not interactive:
                return None
            return getpass.getpass(f"Secret for {label} (blank to skip): ") or None

        try:
            report = transfer.import_data(data, passphrase, ask)
        except transfer.TransferError as exc:
            raise CommandError(str(exc)) from exc
        for line in report.lines():
            self.stdout.write(line)
