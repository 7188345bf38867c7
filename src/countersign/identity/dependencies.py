"""FastAPI dependencies: the principal of a request, and the role gates.

The app keeps one `TokenVerifier` at `app.state.verifier` (built with `build_verifier` at startup).
"""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from countersign.config import AuthMode, Settings
from countersign.errors import Forbidden, Unauthenticated
from countersign.identity.dev import DevIssuer
from countersign.identity.principal import Principal
from countersign.identity.tokens import TokenVerifier

# Declares the bearer scheme in OpenAPI (the docs' "Authorize" button). It never raises:
# missing or wrong credentials are turned into our own problem+json 401 below.
bearer_scheme = HTTPBearer(
    auto_error=False, description="A JWT from the configured identity provider"
)


def build_verifier(
    settings: Settings, http_client: httpx.AsyncClient | None
) -> TokenVerifier:
    """The verifier for `settings.auth_mode`: the dev issuer's own keys in dev mode, the IdP's JWKS otherwise.

    In dev mode `verifier.dev_issuer` is the `DevIssuer` (the app serves its `jwks()` at
    `/v1/.well-known/jwks.json`); in oidc mode it is None.
    """
    if settings.auth_mode is AuthMode.dev:
        return TokenVerifier(settings, http_client, dev_issuer=DevIssuer(settings))
    return TokenVerifier(settings, http_client)


async def get_principal(
    request: Request,
    credentials: Annotated[
        HTTPAuthorizationCredentials | None, Depends(bearer_scheme)
    ] = None,
) -> Principal:
    """The verified principal of this request; 401 `unauthenticated` without a valid bearer token."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    token = (
        credentials.credentials if credentials is not None else _bearer_token(request)
    )
    if not token:
        raise Unauthenticated("missing bearer token")
    verifier: TokenVerifier = request.app.state.verifier
    principal = await verifier.verify(token)
    # Also kept on the request for middleware and error logging, which run outside DI.
    request.state.principal = principal
    return principal


def _bearer_token(request: Request) -> str | None:
    # Used when get_principal is called outside FastAPI's DI (no `credentials` resolved).
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    """The principal, if it holds the admin role; 403 `forbidden` otherwise."""
    if not principal.is_admin:
        raise Forbidden("this operation requires the admin role")
    return principal


async def require_reader(principal: PrincipalDep) -> Principal:
    """The principal, if it holds the admin or viewer role; 403 `forbidden` otherwise."""
    if not principal.can_read_everything:
        raise Forbidden("this operation requires the admin or viewer role")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
ReaderDep = Annotated[Principal, Depends(require_reader)]
