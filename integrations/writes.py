"""The one write path: the only code that creates or changes integrations, models, auth
profiles, headers and stored secrets, and the one recorder of tests.

Every entry point (the connection forms, the auth profile page, the REST API, the
Django admin, import, the Enable toggle) describes what it wants and calls here. A
change is written only when it is proven: it carries a valid test receipt for exactly
the resulting configuration, or the test is run here; a draft is written disabled.
A change that reaches other enabled models (a shared profile's key, an integration's
endpoint) tests each of them first and lists the ones that would fail. On any refusal
nothing is written and the classified reason comes back.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import IntegrityError, transaction

from integrations import audit, callcache, names, receipts, services
from integrations.llm import client
from integrations.llm.config import CallResult, LLMConfig
from integrations.llm.errors import LLMError
from integrations.llm.redact import excerpt
from integrations.llm.wires import template as templates
from integrations.models import (
    AuditAction,
    AuthProfile,
    ConnectionTest,
    CustomModel,
    Integration,
    IntegrationHeader,
    StoredSecret,
    TestStatus,
)
from integrations.telemetry import metrics

INTEGRATION_FIELDS = (
    "name", "description", "endpoint", "protocol", "api_version", "deployment",
    "content_path", "finish_reason_path", "prompt_tokens_path", "completion_tokens_path",
    "total_tokens_path", "tool_calls_path", "timeout_seconds", "verify_tls", "ca_bundle", "proxy_url",
)  # fmt: skip
MODEL_FIELDS = (
    "name", "model_id", "kind", "description", "max_tokens", "temperature", "request_template",
    "test_model_parameters", "price_input_per_mtok", "price_output_per_mtok", "context_window",
)  # fmt: skip
RUN_TEST = object()  # proof: "test it now", for callers with no receipt (API, import)
# proof for the demo data `bootstrap` writes before the server (its upstream) is serving;
# only code can pass it, never a form or an API payload.
SHIPPED = object()


@dataclass
class Actor:
    """Who makes a change when no web request does (commands): for the audit trail."""

    user: Any = None
    META: dict = field(default_factory=dict)


class Refused(Exception):
    """A change that may not be written; nothing was."""

    def __init__(self, message: str, error: LLMError | None = None, failing=()):
        super().__init__(message)
        self.message = message
        self.error = error
        self.failing: list[tuple[CustomModel, CallResult]] = list(failing)


# --- the recorder ----------------------------------------------------------------------------


def record_test(
    integration: Integration | None,
    model: CustomModel | None,
    config: LLMConfig | None,
    result: CallResult,
    request=None,
    test_params: dict | None = None,
    subject: str = "",
) -> ConnectionTest:
    """Store a test run, audit it, and move the model's badge to follow it.

    Every test goes through here, so every test leaves a ConnectionTest and an audit
    row. A test of an unsaved change passes model=None: a failed try must not mark a
    working model as failing; `follow()` moves the badge once the change is saved.
    """
    error = result.error
    user = getattr(request, "user", None)
    if not subject and integration is not None:
        subject = integration.name + (f" / {model.name}" if model else "")
    test = ConnectionTest.objects.create(
        integration=integration,
        model=model,
        subject=subject[:210],
        user=user if user is not None and user.is_authenticated else None,
        config_hash=services.fingerprint(config, test_params) if config else "",
        ok=result.ok,
        status_code=result.status_code,
        latency_ms=result.latency_ms,
        error_kind=error.kind if error else "",
        error_message=error.message if error else "",
        request=result.request,
        response_excerpt=excerpt(result.raw, [], 4000),
    )
    if model is not None:
        follow(model, test)
    metrics.tested(config.protocol if config else "", result.ok)
    outcome = "ok" if result.ok else error.kind
    audit.record(request, AuditAction.TEST, model or test, detail=f"{subject}: {outcome}")
    return test


def follow(model: CustomModel, test: ConnectionTest) -> None:
    """Move a saved model's badge to a test of its saved configuration."""
    ConnectionTest.objects.filter(pk=test.pk, model__isnull=True).update(model=model)
    model.last_test_status = TestStatus.PASSING if test.ok else TestStatus.FAILING
    model.last_test_latency_ms = test.latency_ms
    model.last_tested_at = test.created_at
    model.last_test_error_kind = "" if test.ok else test.error_kind
    model.last_test_error = "" if test.ok else test.error_message[:300]
    model.save(
        update_fields=[
            "last_test_status",
            "last_test_latency_ms",
            "last_tested_at",
            "last_test_error_kind",
            "last_test_error",
        ]
    )


def test_config(
    config: LLMConfig, params: dict | None, integration=None, model=None, request=None, subject=""
) -> tuple[CallResult, ConnectionTest]:
    """Run the test call for a configuration (saved or not) and record it."""
    params = params or dict(services.DEFAULT_TEST_PARAMETERS)
    result = client.call(config, services.test_prompt(params, config.kind))
    return result, record_test(integration, model, config, result, request, params, subject)


def test_model(model: CustomModel, request=None) -> tuple[CallResult, ConnectionTest]:
    """Test a saved model through the same client the Sandbox uses, and record it."""
    params = model.test_model_parameters or services.DEFAULT_TEST_PARAMETERS
    try:
        config = services.config_for(model.integration, model)
    except LLMError as exc:
        result = CallResult(ok=False, error=exc)
        return result, record_test(model.integration, model, None, result, request, params)
    return test_config(config, params, model.integration, model, request)


# --- what a change describes -----------------------------------------------------------------


@dataclass
class ConnectionChange:
    """One save of a connection: the Add page, an integration or model edit, the API.

    `config` is exactly what the client sends for the tested model, secrets included and
    bound (see LLMConfig.auth.bound). None for `integration_fields` or `model_fields`
    means that part is not being changed.
    """

    config: LLMConfig
    test_params: dict
    integration: Integration | None = None
    model: CustomModel | None = None
    test_model: CustomModel | None = None  # an integration edit is tested with this one
    integration_fields: dict[str, Any] | None = None
    model_fields: dict[str, Any] | None = None
    profile: AuthProfile | None = None  # the profile to use (None with new_profile_name: none)
    new_profile_name: str = ""  # create a profile from config.auth under this name
    stored_secret: StoredSecret | None = None  # the new profile references it, not a copy
    header_ids: dict[str, int] = field(default_factory=dict)  # header name -> stored row
    subject: str = ""

    def fingerprint(self) -> str:
        return services.fingerprint(self.config, self.test_params)

    def target(self) -> CustomModel | None:
        return self.model or self.test_model


@dataclass
class Saved:
    integration: Integration
    model: CustomModel | None
    changed: bool  # anything at all
    created_profile: AuthProfile | None = None
    disabled: list[CustomModel] = field(default_factory=list)
    integration_changed: bool = False
    model_changed: bool = False


def saved_fingerprint(model: CustomModel | None) -> str | None:
    """Return the fingerprint of a saved model's configuration, None if it cannot be read."""
    if model is None:
        return None
    try:
        return services.fingerprint(
            services.config_for(model.integration, model), model.test_model_parameters
        )
    except LLMError:
        return None


def _reached(change: ConnectionChange) -> list[tuple[CustomModel, LLMConfig]]:
    """Return the other enabled models of the integration whose calls the change alters."""
    if change.integration is None or change.integration_fields is None:
        return []
    reached = []
    others = change.integration.models.filter(enabled=True).exclude(
        pk=getattr(change.target(), "pk", None)
    )
    shared = {
        "endpoint": change.config.endpoint,
        "protocol": change.config.protocol,
        "auth": change.config.auth,
        "headers": change.config.headers,
        "api_version": change.config.api_version,
        "deployment": change.config.deployment,
        "response_paths": change.config.response_paths,
        "timeout": change.config.timeout,
        "verify_tls": change.config.verify_tls,
        "ca_bundle": change.config.ca_bundle,
        "proxy_url": change.config.proxy_url,
    }
    for model in others.select_related("integration__auth_profile__stored_secret"):
        # The change brings its own auth: the saved profile's secret is not needed.
        try:
            new = replace(services.config_for(replace_profile(change.integration), model), **shared)
        except LLMError as exc:  # e.g. the model's own body cannot be read: it fails
            reached.append((model, CallResult(ok=False, error=exc)))
            continue
        if services.fingerprint(new, model.test_model_parameters) != saved_fingerprint(model):
            reached.append((model, new))
    return reached


def replace_profile(integration: Integration) -> Integration:
    """Return an unsaved copy without its profile, for when an unreadable one is replaced."""
    import copy

    clone = copy.copy(integration)
    clone.auth_profile = None
    return clone


def retest(request, jobs: list[tuple[CustomModel, LLMConfig | CallResult]], why: str):
    """Test each (model, new configuration) at once; record each against its integration
    only. A job may carry a failed CallResult instead (a configuration that cannot be built)."""

    def one(job):
        model, config = job
        if isinstance(config, CallResult):
            return config
        params = model.test_model_parameters or services.DEFAULT_TEST_PARAMETERS
        return client.call(config, services.test_prompt(params, config.kind))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, jobs)) if jobs else []
    tested = []
    for (model, config), result in zip(jobs, results, strict=True):
        params = model.test_model_parameters or services.DEFAULT_TEST_PARAMETERS
        config = None if isinstance(config, CallResult) else config
        test = record_test(
            model.integration, None, config, result, request, params, f"{model} ({why})"
        )
        tested.append((model, result, test))
    return tested


# --- connections -------------------------------------------------------------------------------


def save_connection(
    change: ConnectionChange,
    *,
    request,
    proof: Any = None,
    draft: bool = False,
    disable_failing: bool = False,
) -> Saved:
    """Write a connection change if it is proven; raise Refused otherwise (nothing written).

    proof: a receipt from the Test button, or RUN_TEST to test here. An unchanged
    configuration needs no proof. A draft is written disabled, untested.
    """
    _check_names(change)
    fingerprint = change.fingerprint()
    passed = False
    if draft:
        enabled = False
    elif proof is SHIPPED:
        enabled = True
    elif proof is RUN_TEST:
        result, _ = test_config(
            change.config, change.test_params, change.integration, None, request, change.subject
        )
        if not result.ok:
            raise Refused(f"The test failed: {result.error.message}", result.error)
        enabled = passed = True
    elif receipts.problem(proof or "", fingerprint, request.user) is None:
        enabled = passed = True
    elif change.target() is not None and fingerprint == saved_fingerprint(change.target()):
        enabled = None  # the configuration is as saved: keep whatever state it had
    else:
        raise Refused(receipts.problem(proof or "", fingerprint, request.user))
    # A shipped change (the demo following the port) is made by code before serving.
    shipped = draft or proof is SHIPPED
    reached = [] if shipped else retest(request, _reached(change), "the same change")
    failing = [(m, r) for m, r, _ in reached if not r.ok]
    if failing and not disable_failing:
        names = ", ".join(str(m) for m, _ in failing)
        raise Refused(f"These models would fail with this change: {names}.", failing=failing)
    with _names_held():
        saved = _write_connection(change, request, enabled)
        _link_tests(request, change, saved, fingerprint, passed)
        for model, result, test in reached:
            follow(model, test)
            if not result.ok:
                _disable(request, model, "failed with the saved change")
                saved.disabled.append(model)
    callcache.bump()
    return saved


def _check_names(change: ConnectionChange) -> None:
    """Refuse a name that is taken (see integrations.names), before anything is sent."""
    checks = []
    if change.integration_fields is not None and "name" in change.integration_fields:
        name = change.integration_fields["name"] = names.clean(change.integration_fields["name"])
        checks.append(names.taken(Integration, name, exclude=change.integration))
    if change.model_fields is not None and "name" in change.model_fields:
        name = change.model_fields["name"] = names.clean(change.model_fields["name"])
        checks.append(
            names.taken(CustomModel, name, exclude=change.model, integration=change.integration)
        )
    if change.new_profile_name:
        change.new_profile_name = names.clean(change.new_profile_name)
        checks.append(names.taken(AuthProfile, change.new_profile_name))
    if change.model_fields is not None and change.model_fields.get("request_template") is not None:
        kind = change.model_fields.get("kind") or change.config.kind
        checks.append(templates.conversation_problem(change.model_fields["request_template"], kind))
    if (
        change.integration_fields is not None
        and change.integration_fields.get("request_template") is not None
    ):
        checks.append(templates.conversation_problem(change.integration_fields["request_template"]))
    for problem in checks:
        if problem:
            raise Refused(problem)


class _names_held(transaction.Atomic):
    """A transaction in which a name someone else took meanwhile is a refusal, not a 500."""

    def __init__(self):
        super().__init__(using=None, savepoint=True, durable=False)

    def __exit__(self, exc_type, exc_value, traceback):
        super().__exit__(exc_type, exc_value, traceback)
        if isinstance(exc_value, IntegrityError):
            raise Refused("That name was taken meanwhile: choose another.") from exc_value


def _write_connection(change: ConnectionChange, request, enabled: bool | None) -> Saved:
    """Write the rows of a proven change, and audit each with its field changes."""
    user = request.user
    integration = change.integration
    created_profile = None
    integration_changes: dict = {}
    if change.integration_fields is not None:
        before = audit.integration_state(integration) if integration is not None else {}
        integration = integration or Integration(created_by=user)
        profile = change.profile
        if change.new_profile_name:
            values = profile_values(change.config.auth)
            if change.stored_secret is not None:
                field_name = AuthProfile.STORED_SECRET_FIELD.get(values["kind"], "token")
                values[field_name] = ""  # read from the stored secret on every call
            profile = created_profile = AuthProfile.objects.create(
                created_by=user,
                name=change.new_profile_name,
                bound_origins=sorted(change.config.auth.bound),
                stored_secret=change.stored_secret,
                **values,
            )
            audit.record_created(request, created_profile, AuthProfile.SECRET_FIELDS)
        elif profile is not None:
            bind(profile, change.config.auth.bound)
        for name, value in change.integration_fields.items():
            setattr(integration, name, value)
        integration.auth_profile = profile
        if change.integration is None:
            integration.enabled = True
        elif change.model_fields is None and enabled is not None:
            integration.enabled = enabled
        integration.save()
        _write_headers(integration, change)
        integration_changes = audit.diff(before, audit.integration_state(integration))
        if change.integration is None:
            audit.record(request, AuditAction.CREATE, integration, integration_changes)
        elif integration_changes:
            audit.record(request, AuditAction.UPDATE, integration, integration_changes)
    model = None
    model_changes: dict = {}
    if change.model_fields is not None:
        model = change.model or CustomModel(integration=integration, created_by=user)
        before = audit.snapshot(model) if change.model is not None else None
        for name, value in change.model_fields.items():
            setattr(model, name, value)
        if enabled is not None:
            model.enabled = enabled
        model.save()
        if before is None:
            audit.record_created(request, model)
        else:
            model_changes = audit.diff(before, audit.snapshot(model))
            if model_changes:
                audit.record(request, AuditAction.UPDATE, model, model_changes)
    integration_changed = change.integration is None or bool(integration_changes)
    model_changed = model is not None and (change.model is None or bool(model_changes))
    return Saved(
        integration,
        model,
        changed=integration_changed or model_changed or created_profile is not None,
        created_profile=created_profile,
        integration_changed=integration_changed,
        model_changed=model_changed,
    )


def profile_values(auth) -> dict:
    """Return an auth configuration as profile row values."""
    return {
        name: getattr(auth, name)
        for name in (
            "kind",
            "token",
            "header_name",
            "query_param",
            "body_path",
            "username",
            "password",
            "token_url",
            "client_id",
            "client_secret",
            "scope",
        )  # fmt: skip
    }


def _write_headers(integration: Integration, change: ConnectionChange) -> None:
    stored = {h.pk: h for h in integration.headers.all()}
    keep = set()
    for header in change.config.headers:
        row = stored.get(change.header_ids.get(header.name)) or IntegrationHeader(
            integration=integration
        )
        row.name, row.value, row.secret = header.name, header.value, header.secret
        row.bound_origins = sorted(header.bound) if header.secret else []
        row.save()
        keep.add(row.pk)
    integration.headers.exclude(pk__in=keep).delete()


def bind(obj, routes) -> None:
    """Add routes a secret was typed again for to its stored binding."""
    merged = sorted(set(obj.bound_origins or ()) | set(routes))
    if merged != list(obj.bound_origins or ()):
        obj.bound_origins = merged
        type(obj).objects.filter(pk=obj.pk).update(bound_origins=merged)
        callcache.bump()


def _link_tests(request, change: ConnectionChange, saved: Saved, fingerprint: str, passed: bool):
    """Link this user's tests of exactly the saved configuration to its rows; a passing
    one moves the badge of the model it tested."""
    tests = ConnectionTest.objects.filter(user=request.user, config_hash=fingerprint)
    tests.filter(integration__isnull=True).update(integration=saved.integration)
    if saved.model is not None:
        tests.filter(integration=saved.integration, model__isnull=True).update(model=saved.model)
    target = saved.model or change.test_model
    last = tests.filter(ok=True).order_by("-created_at").first() if passed else None
    if last is not None and target is not None:
        follow(target, last)


def _disable(request, model: CustomModel, why: str) -> None:
    model.enabled = False
    model.save(update_fields=["enabled", "updated_at"])
    audit.record(request, AuditAction.DISABLE, model, detail=why)


# --- auth profiles ------------------------------------------------------------------------------


@dataclass
class ProfileSaved:
    tested: list = field(default_factory=list)  # (model, result, test)
    disabled: list[CustomModel] = field(default_factory=list)


def save_profile(profile: AuthProfile, *, request, disable_failing: bool = False) -> ProfileSaved:
    """Write an auth profile whose new values are set on it (unsaved).

    A change in how it authenticates reaches every integration using it, so it is tested
    first against each enabled model using the profile; if one fails nothing is written,
    unless the person chose to save anyway and disable the failing models.
    """
    profile.name = names.clean(profile.name)
    if problem := names.taken(AuthProfile, profile.name, exclude=profile):
        raise Refused(problem)
    stored = AuthProfile.objects.filter(pk=profile.pk).first() if profile.pk else None
    before = audit.snapshot(stored, AuthProfile.SECRET_FIELDS) if stored else None
    outcome = ProfileSaved()
    if stored is not None:
        try:
            old_auth = services.auth_config(stored).effective()
        except LLMError:
            old_auth = None  # an unreadable secret: anything typed now is a change
        try:
            new_auth = services.auth_config(profile)
        except LLMError as exc:
            raise Refused(exc.message, exc) from exc
        if old_auth is None or new_auth.effective() != old_auth:
            users = CustomModel.objects.filter(integration__auth_profile=stored)
            outcome.tested = test_users(
                request, users, lambda model: new_auth, "the new credentials", disable_failing
            )
    with _names_held():
        profile.save()
        outcome.disabled = follow_users(request, outcome.tested, "the new credentials")
        if before is None:
            audit.record_created(request, profile, AuthProfile.SECRET_FIELDS)
        else:
            changes = audit.diff(before, audit.snapshot(profile, AuthProfile.SECRET_FIELDS))
            if changes:
                audit.record(request, AuditAction.UPDATE, profile, changes)
    callcache.bump()
    return outcome


def delete_profile(profile: AuthProfile, request) -> list[str]:
    """Delete a profile no integration uses; return the users that stop it (nothing deleted)."""
    used_by = list(profile.integrations.order_by("name").values_list("name", flat=True))
    if not used_by:
        audit.record(request, AuditAction.DELETE, profile)
        profile.delete()
    return used_by


# --- enabling, deleting ----------------------------------------------------------------------


def set_enabled(model: CustomModel, enabled: bool, request) -> CallResult | None:
    """Disable at once; enable only after a passing test of the saved configuration.

    Return the failed test's result when enabling was refused, else None.
    """
    if not enabled:
        if model.enabled:
            _disable(request, model, "")
        return None
    result, _ = test_model(model, request)
    if not result.ok:
        return result
    with transaction.atomic():
        if not model.enabled:
            model.enabled = True
            model.save(update_fields=["enabled", "updated_at"])
            audit.record(request, AuditAction.ENABLE, model)
        if not model.integration.enabled:
            model.integration.enabled = True
            model.integration.save(update_fields=["enabled", "updated_at"])
            audit.record(request, AuditAction.ENABLE, model.integration)
    return None


def enable_integration(integration: Integration, request) -> tuple[CustomModel, CallResult] | None:
    """Enable an integration once each of its enabled models passes; return the first failure."""
    for model in integration.models.filter(enabled=True).select_related("integration"):
        result, _ = test_model(model, request)
        if not result.ok:
            return model, result
    if not integration.enabled:
        integration.enabled = True
        integration.save(update_fields=["enabled", "updated_at"])
        audit.record(request, AuditAction.ENABLE, integration)
    return None


def delete_model(model: CustomModel, request, drop_empty_integration: bool = False) -> None:
    """Delete a model; the API's "LLM" is a model and its integration, so there an
    integration left with no model goes with it."""
    integration = model.integration
    audit.record(request, AuditAction.DELETE, model)
    with transaction.atomic():
        model.delete()
        if drop_empty_integration and not integration.models.exists():
            audit.record(
                request, AuditAction.DELETE, integration, detail="its last model was deleted"
            )
            integration.delete()


def delete_integration(integration: Integration, request) -> None:
    models = ", ".join(integration.models.values_list("name", flat=True))
    audit.record(
        request, AuditAction.DELETE, integration, detail=f"with models: {models or 'none'}"
    )
    integration.delete()


# What a change may touch without a test: it never reaches the upstream.
INFO_FIELDS = {
    CustomModel: {
        "name",
        "description",
        "gateway_alias",
        "price_input_per_mtok",
        "price_output_per_mtok",
        "context_window",
    },
    Integration: {"name", "description"},
    AuthProfile: {"name"},
}


def update_info(obj, request, detail: str = "", **fields) -> bool:
    """Change names, descriptions or prices: what does not reach the upstream needs no test."""
    allowed = INFO_FIELDS[type(obj)]
    if set(fields) - allowed:
        raise ValueError(f"Not information fields: {sorted(set(fields) - allowed)}")
    if "name" in fields:
        fields["name"] = names.clean(fields["name"])
        scope = getattr(obj, "integration", None) if isinstance(obj, CustomModel) else None
        if problem := names.taken(type(obj), fields["name"], exclude=obj, integration=scope):
            raise Refused(problem)
    before = audit.snapshot(obj)
    for name, value in fields.items():
        setattr(obj, name, value)
    changes = audit.diff(before, audit.snapshot(obj))
    if changes:
        with _names_held():
            obj.save(update_fields=[*fields, "updated_at"])
        audit.record(request, AuditAction.UPDATE, obj, changes, detail=detail)
        callcache.bump()
    return bool(changes)


def set_integration_enabled(integration: Integration, enabled: bool, request):
    """Disable at once; enable once each enabled model passes. Return the first failure."""
    if enabled:
        return enable_integration(integration, request)
    if integration.enabled:
        integration.enabled = False
        integration.save(update_fields=["enabled", "updated_at"])
        audit.record(request, AuditAction.DISABLE, integration)
    return None


# --- stored secrets -------------------------------------------------------------------------------


def store_secret(
    *, name: str, secret_type: str, value: str, origins: list[str], request
) -> StoredSecret:
    """Store a secret for use by id; `origins` are the routes it may go to (else first use)."""
    name = names.clean(name)
    if problem := names.taken(StoredSecret, name):
        raise Refused(problem)
    with _names_held():
        secret = StoredSecret.objects.create(
            name=name,
            secret_type=secret_type,
            value=value,
            bound_origins=sorted(origins),
            created_by=request.user,
        )
    audit.record_created(request, secret)
    return secret


def secret_users(secret: StoredSecret) -> list[str]:
    """Return what uses a stored secret: its profiles and their integrations."""
    users = []
    for profile in secret.profiles.prefetch_related("integrations").order_by("name"):
        names = ", ".join(i.name for i in profile.integrations.all()) or "no integration"
        users.append(f"auth profile {profile.name} ({names})")
    return users


def delete_secret(secret: StoredSecret, request) -> list[str]:
    """Delete a stored secret nothing uses; return its users otherwise (nothing deleted)."""
    users = secret_users(secret)
    if not users:
        audit.record(request, AuditAction.DELETE, secret)
        secret.delete()
    return users


def rotate_secret(secret: StoredSecret, value: str, request, disable_failing: bool = False):
    """Replace a stored secret's value once every enabled model using it passes with it."""
    users = CustomModel.objects.filter(integration__auth_profile__stored_secret=secret)

    def auth_for(model):
        return services.auth_config(model.integration.auth_profile, stored_value=value)

    tested = test_users(request, users, auth_for, "the rotated secret", disable_failing)
    with transaction.atomic():
        secret.value = value
        secret.save(update_fields=["value", "updated_at"])
        audit.record(request, AuditAction.UPDATE, secret, {"value": ["changed"]})
        follow_users(request, tested, "the rotated secret")
    callcache.bump()
    return tested


def test_users(request, models, auth_for, why: str, disable_failing: bool):
    """Test each enabled model of `models` with the credentials `auth_for(model)` gives;
    refuse with the failing ones unless the person chose to disable them."""
    jobs = []
    enabled = models.filter(enabled=True, integration__enabled=True).select_related(
        "integration__auth_profile__stored_secret"
    )
    for model in enabled:
        try:
            auth = auth_for(model)
            jobs.append((model, replace(services.config_for(model.integration, model), auth=auth)))
        except LLMError as exc:
            jobs.append((model, CallResult(ok=False, error=exc)))
    tested = retest(request, jobs, why)
    failing = [(m, r) for m, r, _ in tested if not r.ok]
    if failing and not disable_failing:
        names = ", ".join(str(m) for m, _ in failing)
        raise Refused(f"These models would fail with {why}: {names}.", failing=failing)
    return tested


def follow_users(request, tested, why: str) -> list[CustomModel]:
    """Move each tested model's badge; disable the ones that failed. Return those."""
    disabled = []
    for model, result, test in tested:
        follow(model, test)
        if not result.ok:
            _disable(request, model, f"failed with {why}")
            disabled.append(model)
    return disabled


MAX_ADD_AT_ONCE = 20


def add_models(integration: Integration, model_ids: list[str], request) -> list[tuple[str, Any]]:
    """Add models the endpoint lists, each tested first (Fetch models). Returns, per id,
    the Saved model or the Refused reason; a failing one is not added."""
    outcomes: list[tuple[str, Any]] = []
    base = services.config_for(integration)
    taken = set(integration.models.values_list("name", flat=True)) | set(
        integration.models.values_list("model_id", flat=True)
    )
    for model_id in model_ids[:MAX_ADD_AT_ONCE]:
        if model_id in taken:
            outcomes.append((model_id, Refused("A model with this name or ID is already here.")))
            continue
        change = ConnectionChange(
            config=replace(base, model_id=model_id),
            test_params=dict(services.DEFAULT_TEST_PARAMETERS),
            integration=integration,
            model_fields={"name": model_id[:100], "model_id": model_id},
            subject=f"{integration.name} / {model_id}",
        )
        try:
            outcomes.append((model_id, save_connection(change, request=request, proof=RUN_TEST)))
            taken.add(model_id)
        except Refused as refused:
            outcomes.append((model_id, refused))
    return outcomes
