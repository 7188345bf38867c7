"""Identity: bearer token verification (JWKS), principals and roles, the dev-mode issuer."""

from countersign.identity.dependencies import (
    AdminDep,
    PrincipalDep,
    ReaderDep,
    build_verifier,
    get_principal,
    require_admin,
    require_reader,
)
from countersign.identity.dev import DevIssuer
from countersign.identity.principal import Principal, principal_from_claims
from countersign.identity.tokens import TokenVerifier

__all__ = [
    "AdminDep",
    "DevIssuer",
    "Principal",
    "PrincipalDep",
    "ReaderDep",
    "TokenVerifier",
    "build_verifier",
    "get_principal",
    "principal_from_claims",
    "require_admin",
    "require_reader",
]
