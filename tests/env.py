"""Loaded with `-p tests.env` before pytest-django reads the settings.

Tests run with dev-mode defaults (loopback allowed for local upstreams, demo
upstream on) but with fixed keys, so no .local/ file is written.
"""

import os

os.environ["DJANGO_DEBUG"] = "1"
os.environ["DJANGO_SECRET_KEY"] = "test-secret-key-not-for-production-0123456789abcdefghijklmn"
# A test-only Fernet key; it protects nothing outside the test database.
os.environ["FIELD_ENCRYPTION_KEY"] = "8nVcC0wQ6tH8bqzv0kq3l2pA0zKmWn7w7d1XyG5ZqVI="
os.environ.pop("REDIS_URL", None)
os.environ.setdefault("DEMO_BASE_URL", "http://127.0.0.1:8000/demo/v1")
# Playwright's sync API runs an event loop in the test thread; the ORM calls that
# fixtures make there are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# Usage rows are written in the response's closer, inside the test's transaction (the
# background writer's own connection could not see the rows they refer to).
os.environ["USAGE_WRITE"] = "inline"
# An alert delivery that fails is tried again after these waits (seconds): short here.
os.environ["ALERT_RETRY_SECONDS"] = "0.01,0.02"
