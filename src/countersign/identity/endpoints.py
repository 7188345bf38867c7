"""`POST /v1/dev/token`: dev-mode sign-in for the admin UI's user picker (UI.md).

Served only when the service issues its own tokens (`COUNTERSIGN_AUTH_MODE=dev`) and never with
`COUNTERSIGN_ENV=production`; anywhere else the route answers 404 as if it did not exist. It
mints exactly what `countersign token` prints (`DevIssuer.issue`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from countersign.config import Settings
from countersign.errors import NotFound
from countersign.identity.tokens import TokenVerifier
from countersign.kit.problem import problem_responses

router = APIRouter(prefix="/dev", tags=["identity"])

# Printable, no whitespace or control characters: a principal id is stored as the assignee,
# actor and requester (200 characters wide), and shown in every UI.
_Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x20\x7f]+$"),
]
_Role = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x20\x7f]+$"),
]


class DevTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sub: _Name
    roles: list[_Role] = Field(default_factory=list, max_length=20)
    azp: _Name | None = None


class DevTokenOut(BaseModel):
    access_token: str
    expires_at: datetime


@router.post(
    "/token", response_model=DevTokenOut, responses=problem_responses(404, 422)
)
async def create_dev_token(body: DevTokenIn, request: Request) -> DevTokenOut:
    """Dev mode only: a token for any user and roles (the admin UI's sign-in picker)."""
    settings: Settings = request.app.state.settings
    verifier: TokenVerifier = request.app.state.verifier
    issuer = verifier.dev_issuer
    if not settings.dev_tokens_enabled or issuer is None:
        raise NotFound("dev tokens are only issued in dev auth mode")
    issued = issuer.issue(body.sub, roles=list(dict.fromkeys(body.roles)), azp=body.azp)
    return DevTokenOut(access_token=issued.access_token, expires_at=issued.expires_at)
