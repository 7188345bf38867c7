"""Who is calling: the principal a verified token stands for, and how its claims map to one."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from countersign.errors import Unauthenticated

# The order of the contract ("Identity"): one id used everywhere (assignee, actor, requester).
# Keycloak puts the login name in `preferred_username`; some IdPs only have `username`; `sub` is
# the opaque fallback (service accounts, IdPs without a username claim).
PRINCIPAL_ID_CLAIMS = ("preferred_username", "username", "sub")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one HTTP request."""

    id: str
    # The OAuth client that obtained the token (`azp`), else the principal id. Owns webhook
    # secrets, idempotency keys and the one-live-request-per-artifact rule.
    caller: str
    # The token's `azp` claim as it is, for display; never a grant by itself.
    azp: str | None
    sub: str
    roles: frozenset[str]
    is_admin: bool
    is_viewer: bool
    # The `azp` this token may act as (visibility of that client's requests, cancel): the token's
    # `azp`, unless COUNTERSIGN_CALLER_CLIENTS is set and does not list it (then None).
    client: str | None = None
    # Kept out of eq/hash (a mapping is not hashable) and out of repr (it may hold e-mail
    # addresses and names that have no business in logs).
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def can_read_everything(self) -> bool:
        return self.is_admin or self.is_viewer


def principal_from_claims(
    claims: Mapping[str, Any],
    *,
    client_id: str,
    role_admin: str,
    role_viewer: str,
    caller_clients: Collection[str] = (),
) -> Principal:
    """Map verified token claims to a `Principal`.

    Roles are the realm roles (`realm_access.roles`) plus the roles of `client_id` only
    (`resource_access.<client_id>.roles`). Roles granted under any other client are ignored:
    they are that client's business, and honouring them would let an unrelated client's
    `AWE_ADMIN` role make its holder an admin here. A top-level `roles` claim is not read either;
    dev tokens put their roles in `realm_access`, as Keycloak does. An empty `client_id` means
    realm roles only.

    `caller_clients` (COUNTERSIGN_CALLER_CLIENTS): when non-empty, only a token whose `azp` is
    listed acts as that caller (sees and cancels the client's requests, uses its webhook secrets
    and idempotency keys); any other token is only its own principal. A public client (the admin
    UI, a registry's browser app) lets any user of the realm obtain a token with its `azp`, so
    without this list every such user would act as that client.

    Raises `Unauthenticated` when the claims name nobody (no usable id claim).
    """
    principal_id = _first_string(claims, PRINCIPAL_ID_CLAIMS)
    if principal_id is None:
        raise Unauthenticated(
            "token names no principal (no preferred_username, username or sub claim)"
        )
    azp = _string(claims.get("azp"))
    roles = frozenset(_roles_of(claims.get("realm_access")))
    if client_id:
        resource_access = claims.get("resource_access")
        if isinstance(resource_access, Mapping):
            roles |= frozenset(_roles_of(resource_access.get(client_id)))
    is_admin = role_admin in roles
    client = (
        azp
        if azp is not None and (not caller_clients or azp in caller_clients)
        else None
    )
    return Principal(
        id=principal_id,
        caller=client or principal_id,
        azp=azp,
        client=client,
        # Keycloak can omit `sub` from lightweight access tokens; the principal id stands in.
        sub=_string(claims.get("sub")) or principal_id,
        roles=roles,
        is_admin=is_admin,
        is_viewer=role_viewer in roles,
        claims=MappingProxyType(dict(claims)),
    )


def _string(value: Any) -> str | None:
    # Blank values are as good as absent: an empty id would match nothing, or everything.
    if isinstance(value, str) and value.strip():
        return value
    return None


def _first_string(claims: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = _string(claims.get(name))
        if value is not None:
            return value
    return None


def _roles_of(access: Any) -> list[str]:
    # Malformed structures grant nothing rather than failing the request: the signature is
    # valid, the token just carries no usable roles there.
    if not isinstance(access, Mapping):
        return []
    roles = access.get("roles")
    if not isinstance(roles, list):
        return []
    return [role for role in roles if isinstance(role, str) and role]
