"""Export and import integrations, models and auth profiles as JSON.

Secrets are left out unless asked for; then each is encrypted with a key derived
from a passphrase (scrypt), never with the server's own key. Import is idempotent
by name: it reports what it created, updated and skipped, and which secrets are
missing so that they can be entered.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.db import transaction
from django.utils import timezone

from integrations import services, transfer_routes, writes
from integrations.llm import inputs
from integrations.llm.config import AuthConfig, Header, LLMConfig
from integrations.llm.errors import LLMError
from integrations.models import AuthProfile, Integration, StoredSecret
from integrations.secrets import UnreadableSecret

FORMAT = "byollm-export"
VERSION = 1
PROFILE_FIELDS = (
    "kind",
    "header_name",
    "query_param",
    "body_path",
    "username",
    "token_url",
    "client_id",
    "scope",
)
INTEGRATION_FIELDS = (
    "description", "endpoint", "protocol", "api_version", "deployment", "request_template",
    "content_path", "finish_reason_path", "prompt_tokens_path", "completion_tokens_path",
    "total_tokens_path", "tool_calls_path", "timeout_seconds", "verify_tls", "ca_bundle",
    "proxy_url", "enabled",
)  # fmt: skip
MODEL_FIELDS = (
    "model_id", "kind", "description", "enabled", "max_tokens", "temperature", "test_model_parameters",
    "request_template", "price_input_per_mtok", "price_output_per_mtok", "context_window",
)  # fmt: skip


class TransferError(Exception):
    pass


def _fernet(passphrase: str, salt: bytes) -> Fernet:
    key = hashlib.scrypt(passphrase.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return Fernet(base64.urlsafe_b64encode(key))


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def export(include_secrets: bool = False, passphrase: str = "") -> dict:
    """Return every integration, model and auth profile as a JSON-ready dict."""
    if include_secrets and len(passphrase) < 8:
        raise TransferError("Exporting secrets needs a passphrase of at least 8 characters.")
    salt = os.urandom(16)
    fernet = _fernet(passphrase, salt) if include_secrets else None

    def seal(value) -> str | None:
        if fernet is None or not value or isinstance(value, UnreadableSecret):
            return None
        return fernet.encrypt(str(value).encode()).decode()

    data: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": timezone.now().isoformat(),
        "secrets": "encrypted" if include_secrets else "omitted",
        "stored_secrets": [],
        "auth_profiles": [],
        "integrations": [],
    }
    if include_secrets:
        data["encryption"] = {
            "kdf": "scrypt",
            "n": 2**14,
            "r": 8,
            "p": 1,
            "salt": base64.b64encode(salt).decode(),
        }
    for secret in StoredSecret.objects.order_by("name"):
        data["stored_secrets"].append(
            {
                "name": secret.name,
                "secret_type": secret.secret_type,
                "origins": list(secret.bound_origins or ()),
                "value": seal(secret.value),
            }
        )
    for profile in AuthProfile.objects.select_related("stored_secret").order_by("name"):
        entry = {"name": profile.name} | {f: getattr(profile, f) for f in PROFILE_FIELDS}
        entry["stored_secret"] = profile.stored_secret.name if profile.stored_secret else None
        entry["secrets"] = {
            name: seal(getattr(profile, name))
            for name in AuthProfile.SECRET_FIELDS
            if getattr(profile, name)
        }
        data["auth_profiles"].append(entry)
    integrations = Integration.objects.select_related(
        "auth_profile__stored_secret"
    ).prefetch_related("headers", "models")
    for integration in integrations.order_by("name"):
        entry = {"name": integration.name} | {
            f: _plain(getattr(integration, f)) for f in INTEGRATION_FIELDS
        }
        proxy = services.reveal_or_blank(integration.proxy_url)
        entry["proxy_url"] = proxy
        if "@" in proxy:  # credentials in the proxy URL are a secret too
            entry["proxy_url"] = None
            entry["sealed_proxy_url"] = seal(proxy)
        entry["auth_profile"] = integration.auth_profile.name if integration.auth_profile else None
        entry["headers"] = [
            {"name": h.name, "secret": h.secret}
            | ({"value": seal(h.value)} if h.secret else {"value": str(h.value)})
            for h in integration.headers.all()
        ]
        entry["models"] = [
            {"name": m.name} | {f: _plain(getattr(m, f)) for f in MODEL_FIELDS}
            for m in sorted(integration.models.all(), key=lambda m: m.name)
        ]
        data["integrations"].append(entry)
    data["routes"] = transfer_routes.export_routes()
    return data


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing_secrets: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"Created {len(self.created)}: {', '.join(self.created) or '—'}",
            f"Updated {len(self.updated)}: {', '.join(self.updated) or '—'}",
            f"Skipped (unchanged) {len(self.skipped)}: {', '.join(self.skipped) or '—'}",
        ]
        if self.disabled:
            out.append(f"Disabled {len(self.disabled)}: {', '.join(self.disabled)}")
        if self.missing_secrets:
            out.append(
                f"Missing secrets (enter them before testing): {', '.join(self.missing_secrets)}"
            )
        return out


def _apply(obj, values: dict) -> bool:
    changed = False
    for name, value in values.items():
        current = getattr(obj, name)
        if isinstance(current, Decimal) and value is not None:
            value = Decimal(str(value))
        if current != value:
            setattr(obj, name, value)
            changed = True
    return changed


@transaction.atomic
def import_data(
    data: dict,
    passphrase: str = "",
    ask_secret: Callable[[str], str | None] | None = None,
    user=None,
) -> Report:
    """Create or update rows by name; a secret not in the file is asked for or reported missing."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TransferError("This is not a console export (format byollm-export).")
    if data.get("version") != VERSION:
        raise TransferError(
            f"Export version {data.get('version')} is not supported (expected {VERSION})."
        )
    fernet = None
    if data.get("secrets") == "encrypted":
        if not passphrase:
            raise TransferError("This export holds encrypted secrets: give its passphrase.")
        fernet = _fernet(passphrase, base64.b64decode(data["encryption"]["salt"]))

    def unseal(token: str | None, label: str) -> str | None:
        if token and fernet is not None:
            try:
                return fernet.decrypt(token.encode()).decode()
            except InvalidToken as exc:
                raise TransferError("Wrong passphrase: the secrets do not decrypt.") from exc
        return ask_secret(label) if ask_secret else None

    _check(data)
    report = Report()
    actor = writes.Actor(user)
    routes = _routes_by_profile(data)
    for entry in data.get("stored_secrets", []):
        _import_stored_secret(entry, unseal, actor, report)
    for entry in data.get("auth_profiles", []):
        _import_profile(entry, unseal, routes, actor, report)
    for entry in data.get("integrations", []):
        _import_integration(entry, unseal, actor, report)
    transfer_routes.import_routes(data.get("routes") or [], actor, report)
    return report


def _routes_by_profile(data: dict) -> dict[str, set[str]]:
    """Return, per profile name, the routes of the file's integrations that use it: where
    a secret that comes with the file was entered for."""
    routes: dict[str, set[str]] = {}
    token_urls = {p["name"]: p.get("token_url", "") for p in data.get("auth_profiles", [])}
    for entry in data.get("integrations", []):
        name = entry.get("auth_profile")
        if name:
            proxy = entry.get("proxy_url") or ""
            found = routes.setdefault(name, set())
            found.add(inputs.route(entry["endpoint"], proxy))
            if token_urls.get(name):
                found.add(inputs.route(token_urls[name], proxy))
    return routes


def _import_stored_secret(entry: dict, unseal, actor, report: Report) -> None:
    name = entry["name"]
    secret = StoredSecret.objects.filter(name=name).first()
    value = unseal(entry.get("value"), f"stored secret {name}")
    if secret is None:
        if not value:
            report.missing_secrets.append(f"stored secret {name}")
            return
        writes.store_secret(
            name=name,
            secret_type=entry.get("secret_type") or "LLM_API_KEY",
            value=value,
            origins=list(entry.get("origins") or ()),
            request=actor,
        )
        report.created.append(f"stored secret {name}")
    elif value and value != secret.value:
        # A rotation: its users are tested with the new value; failing ones are disabled.
        tested = writes.rotate_secret(secret, value, actor, disable_failing=True)
        report.disabled += [
            f"{m} (failed with the imported secret)" for m, r, _ in tested if not r.ok
        ]
        report.updated.append(f"stored secret {name}")
    else:
        report.skipped.append(f"stored secret {name}")


def _import_profile(entry: dict, unseal, routes, actor, report: Report) -> None:
    name = entry["name"]
    profile = AuthProfile.objects.filter(name=name).first()
    created = profile is None
    profile = profile or AuthProfile(name=name, created_by=actor.user)
    changed = _apply(profile, {f: entry.get(f, "") for f in PROFILE_FIELDS})
    stored = StoredSecret.objects.filter(name=entry.get("stored_secret") or "").first()
    if stored != (profile.stored_secret if profile.pk else None):
        profile.stored_secret, changed = stored, True
    typed = False
    for secret_name, sealed in (entry.get("secrets") or {}).items():
        if secret_name not in AuthProfile.SECRET_FIELDS:
            continue
        value = unseal(sealed, f"auth profile {name}: {secret_name}")
        if value:
            changed |= getattr(profile, secret_name) != value
            setattr(profile, secret_name, value)
            typed = True
        elif not getattr(profile, secret_name) and not entry.get("stored_secret"):
            report.missing_secrets.append(f"auth profile {name}: {secret_name}")
    if typed:  # the file's secrets go where the file's integrations send them
        profile.bound_origins = sorted(routes.get(name, set()))
    if changed or created:
        saved = writes.save_profile(profile, request=actor, disable_failing=True)
        report.disabled += [f"{m} (failed with the imported credentials)" for m in saved.disabled]
    _tally(report, f"auth profile {name}", created, changed)


def _import_integration(entry: dict, unseal, actor, report: Report) -> None:
    name = entry["name"]
    integration = Integration.objects.filter(name=name).first()
    values = {f: entry[f] for f in INTEGRATION_FIELDS if f in entry and f != "enabled"}
    if "sealed_proxy_url" in entry:
        proxy = unseal(entry["sealed_proxy_url"], f"integration {name}: proxy URL")
        if not proxy and integration is not None:
            proxy = services.reveal_or_blank(integration.proxy_url)
        if not proxy:
            report.missing_secrets.append(f"integration {name}: proxy URL")
        values["proxy_url"] = proxy or ""
    values["proxy_url"] = values.get("proxy_url") or ""
    profile_name = entry.get("auth_profile")
    profile = AuthProfile.objects.get(name=profile_name) if profile_name else None
    base = _config(values, profile, entry.get("headers", []), integration, unseal, report, name)
    models = entry.get("models", [])
    if not models:
        report.skipped.append(f"integration {name} (no model to test it with; not imported)")
        return
    label = f"integration {name}"
    for model_entry in models:
        model = integration.models.filter(name=model_entry["name"]).first() if integration else None
        fields = {f: model_entry[f] for f in MODEL_FIELDS if f in model_entry and f != "enabled"}
        for price in ("price_input_per_mtok", "price_output_per_mtok"):
            if fields.get(price) is not None:
                fields[price] = Decimal(str(fields[price]))
        config = services.model_config(base, fields)
        change = writes.ConnectionChange(
            config=config,
            test_params=fields.get("test_model_parameters") or {},
            integration=integration,
            model=model,
            subject=f"{name} / {model_entry['name']}",
            integration_fields={"name": name, **values},
            profile=profile,
            header_ids={h.name: h.pk for h in integration.headers.all()} if integration else {},
            model_fields={"name": model_entry["name"], **fields},
        )
        model_label = f"model {name} / {model_entry['name']}"
        saved = _save_imported(change, model_entry.get("enabled", True), actor, report, model_label)
        if integration is None:
            report.created.append(label)
        elif saved.integration_changed and label not in report.updated:
            report.updated.append(label)
        integration = saved.integration
        _tally(report, model_label, model is None, saved.model_changed)
    if label not in report.created + report.updated:
        report.skipped.append(label)


def _save_imported(change, enabled: bool, actor, report: Report, label: str):
    """Unchanged: kept as it is. Changed and enabled: tested here, and saved disabled with
    the reason if the test fails. Disabled in the file: saved as a draft."""
    unchanged = change.model is not None and change.fingerprint() == writes.saved_fingerprint(
        change.model
    )
    if unchanged or not enabled:
        return writes.save_connection(change, request=actor, draft=not enabled and not unchanged)
    try:
        return writes.save_connection(change, request=actor, proof=writes.RUN_TEST)
    except writes.Refused as exc:
        report.disabled.append(f"{label} (saved disabled: {exc.message})")
        return writes.save_connection(change, request=actor, draft=True)


def _config(values, profile, rows, integration, unseal, report, name) -> LLMConfig:
    """Return the configuration the file describes; secrets it brings are bound to it."""
    try:
        auth = services.auth_config(profile)
    except LLMError:
        auth = AuthConfig()
        report.missing_secrets.append(f"auth profile {profile.name}: unreadable")
    route = inputs.route(values["endpoint"], values["proxy_url"])
    stored = {h.name: h for h in integration.headers.all()} if integration else {}
    headers = []
    for row in rows:
        if not row.get("secret"):
            headers.append(Header(row["name"], row.get("value", ""), False))
            continue
        value = unseal(row.get("value"), f"integration {name}: header {row['name']}")
        old = stored.get(row["name"])
        if value:
            headers.append(Header(row["name"], value, True, frozenset({route})))
        elif old is not None and old.secret and not isinstance(old.value, UnreadableSecret):
            headers.append(Header(row["name"], old.value, True, frozenset(old.bound_origins)))
        else:
            report.missing_secrets.append(f"integration {name}: header {row['name']}")
            headers.append(Header(row["name"], "", True))
    return services.integration_config(values, auth, tuple(headers))


def _check(data: dict) -> None:
    """Apply the same edge rules as the forms and the API before anything is written."""
    try:
        for entry in data.get("auth_profiles", []):
            if entry.get("header_name"):
                inputs.check_header_name(entry["header_name"])
            if entry.get("token_url"):
                inputs.parse_url(entry["token_url"], "token URL")
        for entry in data.get("integrations", []):
            where = f"integration {entry.get('name')!r}"
            inputs.parse_url(entry.get("endpoint") or "", f"endpoint of {where}")
            if entry.get("proxy_url"):
                inputs.parse_url(entry["proxy_url"], f"proxy URL of {where}", True)
            if entry.get("request_template") is not None:
                inputs.check_json(entry["request_template"], f"The body of {where}")
            for row in entry.get("headers", []):
                inputs.check_header_name(row.get("name") or "")
                if not row.get("secret"):
                    inputs.check_header_value(row.get("value") or "")
            for model in entry.get("models", []):
                inputs.check_json(model.get("test_model_parameters") or {}, f"{where}'s model")
                for name in ("max_tokens",):
                    if model.get(name) is not None:
                        inputs.check_int(model[name], f"{name} of {where}'s model")
    except (inputs.InputError, TypeError, AttributeError) as exc:
        raise TransferError(f"Nothing was imported: {exc}") from exc


def _tally(report: Report, label: str, created: bool, changed: bool) -> None:
    if created:
        report.created.append(label)
    elif changed:
        report.updated.append(label)
    else:
        report.skipped.append(label)
