"""Settings, read from the environment.

Production sets DJANGO_SECRET_KEY, FIELD_ENCRYPTION_KEY, ALLOWED_HOSTS and usually
DATABASE_URL and REDIS_URL; every one may also come from a file named by NAME_FILE.
Dev mode (DJANGO_DEBUG=1, what `make run` uses) needs nothing: it generates its keys
once into .local/dev-secrets.json (git-ignored) so stored secrets survive restarts.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_secret(name: str, default: str | None = None) -> str | None:
    """Return NAME from the environment, or the contents of the file named by NAME_FILE."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path} cannot be read: {exc}") from exc
    return default


def env_bool(name: str, default: bool) -> bool:
    value = env_secret(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = env_secret(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from exc


def env_list(name: str, default: str = "") -> list[str]:
    value = env_secret(name) or default
    return [item.strip() for item in value.split(",") if item.strip()]


def _dev_secrets() -> dict[str, str]:
    """Return the dev-mode keys, generating them once into a git-ignored file."""
    path = BASE_DIR / ".local" / "dev-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    data = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    path.chmod(0o600)
    return data


DEBUG = env_bool("DJANGO_DEBUG", False)

_SECRET_KEY_HOWTO = (
    "Set DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE). Make one with: "
    'python -c "import secrets; print(secrets.token_urlsafe(50))"'
)
_FIELD_KEY_HOWTO = (
    "Set FIELD_ENCRYPTION_KEY (or FIELD_ENCRYPTION_KEY_FILE) to a comma-separated list of "
    "Fernet keys; the first encrypts, all decrypt. Make one with: "
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)

SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
_field_keys = env_list("FIELD_ENCRYPTION_KEY")
if DEBUG and (not SECRET_KEY or not _field_keys):
    _dev = _dev_secrets()
    SECRET_KEY = SECRET_KEY or _dev["DJANGO_SECRET_KEY"]
    _field_keys = _field_keys or [_dev["FIELD_ENCRYPTION_KEY"]]
if not SECRET_KEY:
    raise ImproperlyConfigured(_SECRET_KEY_HOWTO)
if not _field_keys:
    raise ImproperlyConfigured(_FIELD_KEY_HOWTO)
for _key in _field_keys:
    try:
        Fernet(_key)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEY holds an invalid key. {_FIELD_KEY_HOWTO}"
        ) from exc
FIELD_ENCRYPTION_KEY = _field_keys

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.forms",
    "django_htmx",
    "template_partials",
    "encrypted_model_fields",
    "ninja",
    "django_tasks",
    "django_tasks_db",
    "integrations",
    "sandbox",
]

# Background tasks (evaluation experiments): Django's tasks API through the django-tasks
# backport, kept in the database and run by `manage.py db_worker` (django-tasks-db).
# Larger teams may use RQ on the console's Redis instead (django-tasks-rq): README.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

MIDDLEWARE = [
    "config.middleware.seed_api_paths",
    "integrations.telemetry.middleware.gateway_requests",
    "config.middleware.gateway_cors",
    "config.middleware.asgi_streams",
    "config.middleware.Security",
    "integrations.gateway.metering.after_response",
    "config.middleware.content_security_policy",
    "config.middleware.api_errors_as_json",
    "config.middleware.StaticFiles",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "config.middleware.ConsoleLoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# Under ASGI (production) the gateway's calls take this shorter list (config/asgi.py):
# they have no session, user, CSRF token or messages. Under WSGI they take MIDDLEWARE.
GATEWAY_PREFIX = "/v1/"
# Browser origins allowed to call the gateway (CORS), e.g. "https://app.example.com";
# "*" for any. Off when empty: gateway keys are secrets, meant for servers.
GATEWAY_CORS_ORIGINS = env_list("GATEWAY_CORS_ORIGINS")
GATEWAY_MIDDLEWARE = [
    "config.middleware.seed_api_paths",
    "integrations.telemetry.middleware.gateway_requests",
    "config.middleware.gateway_cors",
    "config.middleware.Security",
    "integrations.gateway.metering.after_response",
    "config.middleware.content_security_policy",
    "config.middleware.api_errors_as_json",
]

FORM_RENDERER = "config.renderers.ConsoleFormRenderer"
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "integrations.context_processors.console",
            ],
            "builtins": [
                "django_htmx.templatetags.django_htmx",
                "template_partials.templatetags.partials",
                "integrations.templatetags.console",
            ],
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        env_secret("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool("DB_POOL", True):
    # One psycopg pool per gunicorn worker, shared by its threads, instead of one
    # persistent connection per thread (2 workers x 64 threads ran PostgreSQL out of
    # connections). A thread returns its connection before it waits on an upstream
    # (integrations.llm.transport), so a few connections serve many calls in flight.
    # Sizing rule (README, "PostgreSQL"): hosts x workers x DB_POOL_MAX_SIZE plus every
    # other client must stay under max_connections - superuser_reserved_connections.
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 2),
        "max_size": env_int("DB_POOL_MAX_SIZE", 8),
        "timeout": float(env_secret("DB_POOL_TIMEOUT") or 10),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and IMMEDIATE transactions let several gunicorn threads share SQLite
    # without "database is locked" errors. Connections persist per thread
    # (CONN_MAX_AGE): opening one and running the PRAGMAs on every request cost ~1 ms.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_redis_url = env_secret("REDIS_URL")
if _redis_url:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.ConsoleRedisCache",
            "LOCATION": _redis_url,
            "KEY_PREFIX": "byollm",
        }
    }
    # Sessions read from Redis and write through to the database: one query less a page.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_FAILURES_PER_ACCOUNT = env_int("LOGIN_FAILURES_PER_ACCOUNT", 5)
LOGIN_FAILURES_PER_IP = env_int("LOGIN_FAILURES_PER_IP", 30)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 15 * 60)
# Mail is for password resets only; invitations show a one-time link to the Admin.
# Dev mode prints mail to the console. Production sends none unless EMAIL_BACKEND is set:
# a reset link printed to stdout lands in the server log, where anyone reading it could
# take over the account. Without mail, Admins hand out set-password links (Users page).
EMAIL_BACKEND = env_secret("EMAIL_BACKEND") or (
    "django.core.mail.backends.console.EmailBackend" if DEBUG else ""
)
PASSWORD_RESET_BY_EMAIL = bool(EMAIL_BACKEND)
if not EMAIL_BACKEND:
    EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3 * 24 * 3600)
# SMTP, for password resets and alert mail (EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend).
EMAIL_HOST = env_secret("EMAIL_HOST") or "localhost"
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_secret("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_secret("DEFAULT_FROM_EMAIL") or "byollm-console@localhost"

# Alerts (integrations/alerts): how often the task queue checks the rules, how long a
# subject that fired stays quiet after it resolves (a flapping model sends one message,
# not one a minute), and the waits between a failed delivery's tries.
ALERT_CHECK_SECONDS = env_int("ALERT_CHECK_SECONDS", 60)
ALERT_DEDUPE_SECONDS = env_int("ALERT_DEDUPE_SECONDS", 900)
ALERT_RETRY_SECONDS = tuple(
    float(s) for s in (env_secret("ALERT_RETRY_SECONDS") or "1,5").split(",")
)
# The console's address as people reach it, for links in alert messages.
CONSOLE_URL = (env_secret("CONSOLE_URL") or "").rstrip("/")
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")  # collectstatic
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Tests and dev serve straight from the finders; production from collectstatic output.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# Security: strict in production, relaxed only where dev mode serves plain http.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_BEHIND_TLS_PROXY", False) else None
)
# Behind a proxy that sets X-Forwarded-For, the audit trail records the client's address.
TRUST_X_FORWARDED_FOR = env_bool("DJANGO_TRUST_X_FORWARDED_FOR", False)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]  # probes and scrapers inside the network
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 12)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", not DEBUG)
# Turning preload off is a deliberate choice, not an oversight to warn about.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD or DEBUG else ["security.W021"]
# config.middleware.Security is Django's SecurityMiddleware (a subclass that answers API
# and gateway calls over plain HTTP with an error, not a redirect); the deploy check looks
# for the class by name (tests/test_plain_http.py checks it is in place).
SILENCED_SYSTEM_CHECKS += ["security.W001"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Outbound LLM calls (integrations/llm/transport.py) ---------------------------
# Loopback (127.0.0.0/8, ::1) is allowed in dev mode and tests so local model servers
# (Ollama, LM Studio, the demo upstream) work; production refuses it unless asked.
LLM_ALLOW_LOOPBACK = env_bool("LLM_ALLOW_LOOPBACK", DEBUG)
LLM_ALLOW_PRIVATE = env_bool("LLM_ALLOW_PRIVATE", False)
# Hosts or CIDRs that may be reached even though they are private or loopback,
# e.g. "10.0.0.0/8,vllm.internal". Link-local and cloud metadata stay refused.
LLM_ALLOWED_NETWORKS = env_list("LLM_ALLOWED_NETWORKS")
LLM_CONNECT_TIMEOUT = float(env_secret("LLM_CONNECT_TIMEOUT") or 10)
LLM_DEFAULT_TIMEOUT = float(env_secret("LLM_DEFAULT_TIMEOUT") or 60)
LLM_MAX_TIMEOUT = float(env_secret("LLM_MAX_TIMEOUT") or 300)
LLM_MAX_RESPONSE_BYTES = env_int("LLM_MAX_RESPONSE_BYTES", 2 * 1024 * 1024)

# Sandbox runs per user: "N/SECONDS" (a Compare of 4 models counts 4).
_sandbox_limit = (env_secret("SANDBOX_RATE_LIMIT") or "30/60").split("/")
try:
    SANDBOX_RATE_LIMIT = (int(_sandbox_limit[0]), int(_sandbox_limit[1]))
except (ValueError, IndexError) as exc:
    raise ImproperlyConfigured("SANDBOX_RATE_LIMIT must look like 30/60 (runs/seconds).") from exc
SANDBOX_COMPARE_MAX = 4
# Evaluation calls per experiment owner, "N/SECONDS": experiments wait (never fail) when
# over it. Each experiment's concurrency per model bounds it too.
_eval_limit = (env_secret("EVALUATION_RATE_LIMIT") or "60000/60").split("/")
try:
    EVALUATION_RATE_LIMIT = (int(_eval_limit[0]), int(_eval_limit[1]))
except (ValueError, IndexError) as exc:
    raise ImproperlyConfigured("EVALUATION_RATE_LIMIT must look like 60000/60.") from exc
# An experiment whose worker has not beaten its heartbeat (every 2 s) for this long is
# taken to be dead and queued again for the next worker.
EVALUATION_STALE_SECONDS = env_int("EVALUATION_STALE_SECONDS", 30)
# Usage rows (one per gateway call or Sandbox run) older than this are deleted by
# `manage.py prune_usage`; the daily totals the usage page reads are kept.
USAGE_RETENTION_DAYS = env_int("USAGE_RETENTION_DAYS", 90)
# How long /v1/responses keeps a stored response (for previous_response_id and GET).
RESPONSES_RETENTION_DAYS = env_int("RESPONSES_RETENTION_DAYS", 30)
# What a gateway call reserves against its key's tokens per minute and budget when neither
# it nor its model names a max_tokens and the model's context window is not known.
GATEWAY_RESERVE_TOKENS = env_int("GATEWAY_RESERVE_TOKENS", 4096)
# How long a stream to an Anthropic client may be quiet before the gateway sends a ping
# (as Anthropic does), so proxies and clients do not time out while a model thinks.
GATEWAY_KEEPALIVE_SECONDS = float(os.environ.get("GATEWAY_KEEPALIVE_SECONDS", "10"))
# "background": a writer thread per process inserts usage rows in batches after the
# response; "inline": the response's closer writes them (tests use this).
USAGE_WRITE = os.environ.get("USAGE_WRITE", "background")
# Where each worker keeps its usage rows on disk until the database has them, so a killed
# worker loses none (integrations/gateway/spool.py): local to the host, and writable.
USAGE_SPOOL_DIR = env_secret("USAGE_SPOOL_DIR") or str(BASE_DIR / ".local" / "usage-spool")

# /metrics (Prometheus) is served only with this bearer token set (README, "Metrics").
METRICS_TOKEN = env_secret("METRICS_TOKEN") or ""
# Off: no call is counted (bench_gateway.py measures what counting costs).
METRICS_ENABLED = env_bool("METRICS_ENABLED", True)

# The built-in demo upstream (/demo/v1/...) is for dev mode only.
DEMO_UPSTREAM_ENABLED = env_bool("DEMO_UPSTREAM_ENABLED", DEBUG)
DEMO_BASE_URL = env_secret("DEMO_BASE_URL") or "http://127.0.0.1:8000/demo/v1"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_secret("LOG_LEVEL") or "INFO"},
    "loggers": {
        # httpx logs full request URLs at INFO; a query-parameter API key would leak.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
