"""Every ORM table, imported here so alembic and relationships see the whole schema."""

from countersign.models.approval_request import LIVE_STATUSES, ApprovalRequest
from countersign.models.audit_entry import AuditEntry
from countersign.models.caller_secret import CallerSecret
from countersign.models.decision import Decision
from countersign.models.delegation import Delegation
from countersign.models.event import Event
from countersign.models.idempotency_key import IdempotencyKey
from countersign.models.policy import Policy
from countersign.models.policy_rule import PolicyRule
from countersign.models.policy_stage import PolicyStage
from countersign.models.request_stage import RequestStage
from countersign.models.task import Task
from countersign.models.webhook_attempt import WebhookAttempt
from countersign.models.webhook_delivery import WebhookDelivery

__all__ = [
    "LIVE_STATUSES",
    "ApprovalRequest",
    "AuditEntry",
    "CallerSecret",
    "Decision",
    "Delegation",
    "Event",
    "IdempotencyKey",
    "Policy",
    "PolicyRule",
    "PolicyStage",
    "RequestStage",
    "Task",
    "WebhookAttempt",
    "WebhookDelivery",
]
