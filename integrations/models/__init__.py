"""The integrations app's models, one module per room."""

from integrations.models.audit import AuditAction, AuditEvent
from integrations.models.configuration import (
    AuthKind,
    AuthProfile,
    ConnectionTest,
    CustomModel,
    Integration,
    IntegrationHeader,
    Protocol,
    StoredSecret,
    TestStatus,
    Timestamped,
)
from integrations.models.gateway import GatewayKey, UsageDaily, UsageRecord, UsageSource
from integrations.models.team import ApiToken

__all__ = [
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
    "Protocol",
    "StoredSecret",
    "TestStatus",
    "Timestamped",
    "UsageDaily",
    "UsageRecord",
    "UsageSource",
]
