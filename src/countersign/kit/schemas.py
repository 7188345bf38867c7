"""What the request and task bodies share: their base models and bounded text fields."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Text500 = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class CommandIn(BaseModel):
    """A command's body. AWE clients send fields Countersign does not use (e.g. `actor` on
    cancel); they are ignored."""

    model_config = ConfigDict(extra="ignore")


class RowOut(BaseModel):
    """An answer read off a stored row."""

    model_config = ConfigDict(from_attributes=True)
