"""The webhook outbox: one delivery row per deliverable event, in the state change's transaction.

The body is frozen here, as the exact bytes that will be signed and sent, so a retry a day later
sends what the caller would have received at once.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from countersign.kit.clock import now
from countersign.models import ApprovalRequest, Event, WebhookDelivery
from countersign.webhooks import delivery as delivery_service
from countersign.webhooks.repository import CallerSecretRepository

# Never delivered: internal bookkeeping. `decision_recorded` only for callers that subscribe.
NOT_DELIVERED = frozenset({"stage_quorum_skipped"})
SUBSCRIPTION_ONLY = frozenset({"decision_recorded"})


def standard_type(event_type: str) -> str:
    """`request_approved` → `approval_request.approved` (the Standard Webhooks `type`)."""
    family, _, verb = event_type.partition("_")
    return f"approval_{family}.{verb}"


def request_summary(request: ApprovalRequest) -> dict[str, Any]:
    return {
        "status": request.status,
        "outcome_reason": request.outcome_reason,
        "current_stage_order": request.current_stage_order,
        "policy_key": request.policy_key,
        "policy_version": request.policy_version,
        "requester": request.requester,
    }


def delivery_body(request: ApprovalRequest, event: Event) -> str:
    """Compact JSON: AWE's flat fields first, then the Standard Webhooks and Countersign fields."""
    body = {
        "event_id": str(event.id),
        "event_type": event.event_type,
        "request_id": str(request.id),
        "artifact_type": request.artifact_type,
        "artifact_id": request.artifact_id,
        "status": request.status,
        "stage_order": event.payload.get("stage_order", request.current_stage_order),
        "actor": event.actor,
        "occurred_at": event.created_at,
        "outcome_reason": request.outcome_reason,
        "type": standard_type(event.event_type),
        "timestamp": event.created_at,
        "sequence": event.sequence,
        "data": {"payload": event.payload, "request": request_summary(request)},
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


async def _subscribes_to_decisions(
    session: AsyncSession, request: ApprovalRequest
) -> bool:
    return await CallerSecretRepository(session).subscribes_to_decisions(
        caller=request.source_client, secret_id=request.callback_secret_id
    )


async def add_delivery(
    session: AsyncSession, request: ApprovalRequest, event: Event
) -> WebhookDelivery | None:
    """Write the outbox row for `event` when the request has a callback and the event is deliverable."""
    if not request.callback_url or event.event_type in NOT_DELIVERED:
        return None
    if event.event_type in SUBSCRIPTION_ONLY and not await _subscribes_to_decisions(
        session, request
    ):
        return None
    delivery = WebhookDelivery(
        id=uuid.uuid4(),
        event_id=event.id,
        request_id=request.id,
        sequence=event.sequence,
        event_type=event.event_type,
        url=request.callback_url,
        caller=request.source_client,
        secret_id=request.callback_secret_id,
        body=delivery_body(request, event),
        status="pending",
        attempt=0,
        next_attempt_at=now(),
    )
    session.add(delivery)
    delivery_service.notify(delivery)
    return delivery
