"""The integrations app's models, one module per room."""

from integrations.models.alerts import AlertDelivery, AlertIncident, AlertKind, AlertRule
from integrations.models.audit import AuditAction, AuditEvent
from integrations.models.configuration import (
    AuthKind,
    AuthProfile,
    ConnectionTest,
    CustomModel,
    Integration,
    IntegrationHeader,
    ModelKind,
    Protocol,
    StoredSecret,
    TestStatus,
    Timestamped,
)
from integrations.models.gateway import (
    GatewayKey,
    StoredResponse,
    UsageDaily,
    UsageRecord,
    UsageSource,
)
from integrations.models.routes import Route, RouteStrategy, RouteTarget, TargetRole
from integrations.models.team import ApiToken

__all__ = [
    "AlertDelivery",
    "AlertIncident",
    "AlertKind",
    "AlertRule",
    "ApiToken",
    "AuditAction",
    "AuditEvent",
    "AuthKind",
    "AuthProfile",
    "ConnectionTest",
    "CustomModel",
    "GatewayKey",
    "Integration",
    "IntegrationHeader",
    "ModelKind",
    "Protocol",
    "Route",
    "RouteStrategy",
    "RouteTarget",
    "StoredResponse",
    "StoredSecret",
    "TargetRole",
    "TestStatus",
    "Timestamped",
    "UsageDaily",
    "UsageRecord",
    "UsageSource",
]
