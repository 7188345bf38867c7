from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from countersign.kit.validation import UtcDatetime
from countersign.webhooks.signing import standard_key

DeliveryStatus = Literal["pending", "delivered", "exhausted"]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class DeliveryOut(_Out):
    id: uuid.UUID
    event_id: uuid.UUID
    request_id: uuid.UUID
    event_type: str
    sequence: int
    url: str
    status: DeliveryStatus
    attempt: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class AttemptOut(_Out):
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    trigger: Literal["scheduled", "manual"]


class RecoverIn(BaseModel):
    since: UtcDatetime
    until: UtcDatetime
    # The list filters of GET /v1/admin/deliveries; absent = any.
    request_id: uuid.UUID | None = None
    event_type: (
        Annotated[str, StringConstraints(min_length=1, max_length=100)] | None
    ) = None
    url: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RecoverIn:
        if self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class RecoverOut(BaseModel):
    requeued: int


class SecretCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Import an existing secret (e.g. from AWE); otherwise one is generated.
    secret: Annotated[str, StringConstraints(min_length=16, max_length=500)] | None = (
        None
    )
    subscribe_decisions: bool = False

    @field_validator("secret")
    @classmethod
    def _usable(cls, value: str | None) -> str | None:
        # Refused here, not when the first delivery cannot be signed weeks later.
        if value is not None:
            standard_key(value)  # ValueError: a `whsec_` secret that is not base64
        return value


class SecretCreated(BaseModel):
    id: uuid.UUID
    caller: str
    secret: str
    status: Literal["active"]
    created_at: datetime


class SecretOut(_Out):
    id: uuid.UUID
    caller: str
    status: Literal["active", "rotated", "revoked"]
    subscribe_decisions: bool
    created_at: datetime
    rotated_at: datetime | None
    expires_at: datetime | None


class RotateIn(BaseModel):
    grace_hours: float = Field(default=24, ge=0, le=24 * 30)


class RevokedOut(BaseModel):
    id: uuid.UUID
    caller: str
    status: Literal["revoked"]
    revoked_at: datetime | None
