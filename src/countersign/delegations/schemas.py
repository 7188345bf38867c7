from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from countersign.kit.validation import UtcDatetime


class DelegationCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Defaults to the caller: users manage their own delegations; admins anyone's.
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = (
        None
    )
    delegate_to: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None


class DelegationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: str
    delegate_to: str
    starts_at: datetime
    ends_at: datetime
    reason: str | None
    created_by: str
    created_at: datetime
