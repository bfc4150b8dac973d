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

from integrations import services
from integrations.llm import inputs
from integrations.models import AuthProfile, CustomModel, Integration, IntegrationHeader
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
    "total_tokens_path", "timeout_seconds", "verify_tls", "ca_bundle", "proxy_url", "enabled",
)  # fmt: skip
MODEL_FIELDS = (
    "model_id", "description", "enabled", "max_tokens", "temperature", "test_model_parameters",
    "request_template", "price_input_per_mtok", "price_output_per_mtok",
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
    for profile in AuthProfile.objects.order_by("name"):
        entry = {"name": profile.name} | {f: getattr(profile, f) for f in PROFILE_FIELDS}
        entry["secrets"] = {
            name: seal(getattr(profile, name))
            for name in AuthProfile.SECRET_FIELDS
            if getattr(profile, name)
        }
        data["auth_profiles"].append(entry)
    integrations = Integration.objects.select_related("auth_profile").prefetch_related(
        "headers", "models"
    )
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
    return data


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing_secrets: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"Created {len(self.created)}: {', '.join(self.created) or '—'}",
            f"Updated {len(self.updated)}: {', '.join(self.updated) or '—'}",
            f"Skipped (unchanged) {len(self.skipped)}: {', '.join(self.skipped) or '—'}",
        ]
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
    typed_profiles = []  # profiles whose secrets came from the file: bound to its endpoints
    for entry in data.get("auth_profiles", []):
        name = entry["name"]
        profile = AuthProfile.objects.filter(name=name).first()
        created = profile is None
        profile = profile or AuthProfile(name=name, created_by=user)
        changed = _apply(profile, {f: entry.get(f, "") for f in PROFILE_FIELDS})
        for secret_name, sealed in (entry.get("secrets") or {}).items():
            if secret_name not in AuthProfile.SECRET_FIELDS:
                continue
            value = unseal(sealed, f"auth profile {name}: {secret_name}")
            if value:
                changed |= getattr(profile, secret_name) != value
                setattr(profile, secret_name, value)
                typed_profiles.append(profile)
            elif not getattr(profile, secret_name):
                report.missing_secrets.append(f"auth profile {name}: {secret_name}")
        profile.save()
        _tally(report, f"auth profile {name}", created, changed)

    for entry in data.get("integrations", []):
        name = entry["name"]
        integration = Integration.objects.filter(name=name).first()
        created = integration is None
        integration = integration or Integration(name=name, created_by=user)
        values = {f: entry[f] for f in INTEGRATION_FIELDS if f in entry}
        if "sealed_proxy_url" in entry:
            proxy = unseal(entry["sealed_proxy_url"], f"integration {name}: proxy URL")
            if proxy:
                values["proxy_url"] = proxy
            else:
                values.pop("proxy_url", None)
                if not integration.proxy_url:
                    report.missing_secrets.append(f"integration {name}: proxy URL")
        profile_name = entry.get("auth_profile")
        values["auth_profile"] = (
            AuthProfile.objects.get(name=profile_name) if profile_name else None
        )
        changed = _apply(integration, values)
        integration.save()
        changed |= _import_headers(integration, entry.get("headers", []), unseal, report)
        _tally(report, f"integration {name}", created, changed)
        for model_entry in entry.get("models", []):
            model = CustomModel.objects.filter(
                integration=integration, name=model_entry["name"]
            ).first()
            model_created = model is None
            model = model or CustomModel(
                integration=integration, name=model_entry["name"], created_by=user
            )
            model_changed = _apply(
                model, {f: model_entry[f] for f in MODEL_FIELDS if f in model_entry}
            )
            model.save()
            _tally(report, f"model {name} / {model.name}", model_created, model_changed)
    for profile in typed_profiles:
        profile.bound_origins = sorted(services.profile_routes(profile))
        profile.save(update_fields=["bound_origins"])
    return report


def _import_headers(integration, rows, unseal, report) -> bool:
    existing = {h.name: h for h in integration.headers.all()}
    changed = False
    for row in rows:
        header = existing.pop(row["name"], None) or IntegrationHeader(
            integration=integration, name=row["name"]
        )
        if row.get("secret"):
            value = unseal(
                row.get("value"), f"integration {integration.name}: header {row['name']}"
            )
            if not value and not header.value:
                report.missing_secrets.append(
                    f"integration {integration.name}: header {row['name']}"
                )
        else:
            value = row.get("value", "")
        if value and header.value != value:
            header.value, changed = value, True
            header.bound_origins = sorted(services.integration_routes(integration))
        if header.secret != bool(row.get("secret")) or header.pk is None:
            changed = True
        header.secret = bool(row.get("secret"))
        header.save()
    for gone in existing.values():
        gone.delete()
        changed = True
    return changed


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
