#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # A checkout with nothing configured is a developer's: run commands in dev mode
    # (generated local keys) instead of failing on missing production keys. Production
    # always sets DJANGO_SECRET_KEY, and the web server (config/wsgi.py) never does this.
    configured = any(os.environ.get(n) for n in ("DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FILE"))
    if not configured and "DJANGO_DEBUG" not in os.environ:
        os.environ["DJANGO_DEBUG"] = "1"
        print("manage.py: no DJANGO_SECRET_KEY set, so running in dev mode.", file=sys.stderr)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
