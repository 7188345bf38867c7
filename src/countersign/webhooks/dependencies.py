"""What webhook endpoints take from the process wiring (`countersign.wiring`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from countersign.webhooks.secrets import SecretBox


def get_secret_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.runtime.box
    return box


SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]
