"""Directory backed by Keycloak's admin REST API (`COUNTERSIGN_KEYCLOAK_*`).

The service authenticates as a confidential client with a service account (client-credentials
grant at `{url}/realms/{realm}/protocol/openid-connect/token`) and reads
`{url}/admin/realms/{realm}/...`. The token is reused until shortly before it expires; one refresh
runs at a time, and a 401 from an admin call refreshes the token once and retries the call.

How rules resolve, in the terms a realm admin uses:

- `role` (realm role, or client role when `client` is given): the enabled users holding the role
  directly, through a group that holds it (members of that group and of all its subgroups, since
  a subgroup inherits its parents' role mappings), or through a composite role that contains it
  (transitively; a composite may be held by a user or by a group). Keycloak has no "effective
  members of a role" endpoint, so the adapter walks the composites upwards: it reads every
  composite role of the realm and of its clients, inverts "contains", and collects the users and
  groups of the role and of every role that implies it.
- `group` (a path such as `/districts/D1`): the enabled members of the group and of all its
  subgroups, recursively.

Every list is read page by page (`first`/`max`) until a short page: nothing is cut at Keycloak's
default page size. User ids are usernames (the principal id of a token is `preferred_username`).
Disabled users are left out.

Failures: an unreachable Keycloak, a timeout, a 5xx, a refused service account or a body that is
not the expected JSON raise `DirectoryUnavailable` (the engine keeps the stage `resolving` and
retries; pickers answer 503). A role, client or group that does not exist is a policy problem, not
an outage: it resolves to nobody and is logged as a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from countersign.config import Settings
from countersign.directory.base import DirectoryGroup, DirectoryRole, DirectoryUser
from countersign.errors import DirectoryUnavailable
from countersign.kit import clock as service_clock
from countersign.kit.outbound import BoundedAnswer, bounded_request

logger = logging.getLogger(__name__)

Json = dict[str, Any]
Params = Mapping[str, str | int]
Clock = Callable[[], datetime]
T = TypeVar("T")

# Items asked for per page. Keycloak's own default is 100 (10 for a group's children), so the
# adapter always sends `max` explicitly and keeps asking until a page comes back short.
PAGE_SIZE = 100
# Renew the service-account token this long before Keycloak says it expires (at most half its life).
TOKEN_RENEW_MARGIN_SECONDS = 30.0
# Used when the token response has no usable `expires_in`.
DEFAULT_TOKEN_LIFETIME_SECONDS = 60.0
# What is read of one answer: a page of full user representations fits many times over.
MAX_ANSWER_BYTES = 4 * 1024 * 1024

_NOT_FOUND = frozenset({404})
ADMIN_ROLES_HINT = (
    "give the service account the realm-management roles view-users, view-clients, "
    "query-groups and view-realm"
)


class KeycloakDirectory:
    is_local = False

    """The `Directory` protocol over Keycloak's admin REST API.

    `http_client` is used as is (its transport, limits); without one the directory creates its own
    client and `aclose()` closes it. `clock` is the time source of the token cache.
    """

    def __init__(
        self,
        settings: Settings,
        http_client: httpx.AsyncClient | None = None,
        *,
        clock: Clock = service_clock.now,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if not settings.keycloak_url or not settings.keycloak_realm:
            raise ValueError(
                "the Keycloak directory needs COUNTERSIGN_KEYCLOAK_URL and COUNTERSIGN_KEYCLOAK_REALM"
            )
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        base = settings.keycloak_url.rstrip("/")
        realm = quote(settings.keycloak_realm, safe="")
        self.token_url = f"{base}/realms/{realm}/protocol/openid-connect/token"
        self.admin_url = f"{base}/admin/realms/{realm}"
        self._client_id = settings.keycloak_client_id
        self._client_secret = settings.keycloak_client_secret.get_secret_value()
        # Each call as a whole (not each read), and all the calls of one answer together.
        self._timeout = settings.keycloak_timeout_seconds
        self._budget = settings.keycloak_budget_seconds
        self._owns_http = http_client is None
        self._http = (
            http_client
            if http_client is not None
            else httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout), follow_redirects=False
            )
        )
        self._clock = clock
        self._page_size = page_size
        self._token: str | None = None
        self._token_renew_at: datetime | None = None
        self._token_lock = asyncio.Lock()

    async def aclose(self) -> None:
        """Close the HTTP client if this directory created it."""
        if self._owns_http:
            await self._http.aclose()

    # -- the Directory protocol: each answer within the budget ------------------------------

    async def users_with_role(self, role: str, client: str | None = None) -> list[str]:
        return await self._within_budget(
            f"role {role!r}", self._users_with_role(role, client)
        )

    async def users_in_group(self, path: str) -> list[str]:
        return await self._within_budget(f"group {path!r}", self._users_in_group(path))

    async def search_users(self, q: str | None = None) -> list[DirectoryUser]:
        return await self._within_budget("a user search", self._search_users(q))

    async def list_roles(
        self, client: str | None = None, q: str | None = None
    ) -> list[DirectoryRole]:
        return await self._within_budget("a role list", self._list_roles(client, q))

    async def list_groups(self, q: str | None = None) -> list[DirectoryGroup]:
        return await self._within_budget("a group list", self._list_groups(q))

    async def list_clients(self) -> list[str]:
        return await self._within_budget("the client list", self._list_clients())

    async def _within_budget(self, what: str, work: Awaitable[T]) -> T:
        """`work`, given up after `COUNTERSIGN_KEYCLOAK_BUDGET_SECONDS` in all.

        The per-call timeout bounds each call; a resolution makes many (every page, every
        composite), so a Keycloak answering slowly page after page would hold the request it
        resolves for (locked) for minutes without this.
        """
        try:
            async with asyncio.timeout(self._budget):
                return await work
        except TimeoutError as exc:
            raise DirectoryUnavailable(
                f"Keycloak did not finish answering {what} within {self._budget:g} s "
                "(COUNTERSIGN_KEYCLOAK_BUDGET_SECONDS)"
            ) from exc

    # -- rules -------------------------------------------------------------------------------

    async def _users_with_role(self, role: str, client: str | None) -> list[str]:
        target = await self._find_role(role, client)
        if target is None:
            return []
        usernames: set[str] = set()
        groups: list[Json] = []
        for holder in await self._roles_implying(target):
            base = _role_path(holder)
            users = await self._get_all(
                f"{base}/users", {"briefRepresentation": "true"}
            )
            usernames.update(_enabled_usernames(users or []))
            groups.extend(
                await self._get_all(f"{base}/groups", {"briefRepresentation": "true"})
                or []
            )
        usernames.update(await self._members_of_trees(groups))
        return sorted(usernames)

    async def _users_in_group(self, path: str) -> list[str]:
        segments = [s for s in path.strip().strip("/").split("/") if s]
        group = None
        if segments:
            encoded = "/".join(quote(s, safe="") for s in segments)
            group = _as_object(
                await self._get(f"/group-by-path/{encoded}"), "group-by-path"
            )
        if group is None:
            logger.warning(
                "group rule names group %r, which does not exist in Keycloak realm; "
                "it resolves to nobody",
                path,
            )
            return []
        return sorted(await self._members_of_trees([group]))

    # -- pickers -----------------------------------------------------------------------------

    async def _search_users(self, q: str | None) -> list[DirectoryUser]:
        params: dict[str, str | int] = {"briefRepresentation": "true"}
        if q:
            params["search"] = q
        found = []
        for user in await self._get_all("/users", params) or []:
            username = _username_if_enabled(user)
            if username is None:
                continue
            name = " ".join(
                part
                for part in (_text(user.get("firstName")), _text(user.get("lastName")))
                if part
            )
            found.append(
                DirectoryUser(
                    username, username, _text(user.get("email")), name or None
                )
            )
        return found

    async def _list_roles(
        self, client: str | None, q: str | None
    ) -> list[DirectoryRole]:
        if client:
            client_uuid = await self._client_uuid(client)
            if client_uuid is None:
                return []
            path = f"/clients/{_seg(client_uuid)}/roles"
        else:
            path = "/roles"
        params: dict[str, str | int] = {"briefRepresentation": "true"}
        if q:
            params["search"] = q
        roles = []
        for rep in await self._get_all(path, params) or []:
            name = _text(rep.get("name"))
            if name:
                roles.append(
                    DirectoryRole(name, _text(rep.get("description")), client or None)
                )
        return roles

    async def _list_groups(self, q: str | None) -> list[DirectoryGroup]:
        """Every group as a flat list of paths, or those whose path contains `q`.

        With `q`, Keycloak's own search narrows the tree first (it answers the top-level groups
        leading to matches, with the matching branches inline).
        """
        params: dict[str, str | int] = {"briefRepresentation": "true"}
        if q:
            params["search"] = q
        top = await self._get_all("/groups", params) or []
        found: dict[str, DirectoryGroup] = {}
        pending: list[tuple[Json, str]] = [(g, "") for g in reversed(top)]
        while pending:
            group, parent_path = pending.pop()
            name = _text(group.get("name")) or ""
            path = _text(group.get("path")) or f"{parent_path}/{name}"
            if path in found:
                continue
            found[path] = DirectoryGroup(path, name or path.rsplit("/", 1)[-1])
            if q:
                children = [
                    g for g in group.get("subGroups") or [] if isinstance(g, dict)
                ]
            else:
                children = await self._subgroups(group)
            pending.extend((child, path) for child in reversed(children))
        groups = sorted(found.values(), key=lambda g: g.path)
        if q:
            needle = q.lower()
            groups = [g for g in groups if needle in g.path.lower()]
        return groups

    async def _list_clients(self) -> list[str]:
        clients = []
        for rep in await self._get_all("/clients") or []:
            client_id = _text(rep.get("clientId"))
            if client_id:
                clients.append(client_id)
        return clients

    # -- roles -------------------------------------------------------------------------------

    async def _client_uuid(self, client_id: str) -> str | None:
        """Keycloak's internal id of the client whose `clientId` is `client_id`, if any."""
        for rep in await self._get_all("/clients", {"clientId": client_id}) or []:
            if rep.get("clientId") == client_id and isinstance(rep.get("id"), str):
                found: str = rep["id"]
                return found
        return None

    async def _find_role(self, role: str, client: str | None) -> Json | None:
        if client:
            client_uuid = await self._client_uuid(client)
            if client_uuid is None:
                logger.warning(
                    "role rule names client %r, which does not exist in Keycloak; "
                    "it resolves to nobody",
                    client,
                )
                return None
            path = f"/clients/{_seg(client_uuid)}/roles/{_seg(role)}"
        else:
            path = f"/roles/{_seg(role)}"
        rep = _as_object(await self._get(path), path)
        if rep is None:
            logger.warning(
                "role rule names role %r%s, which does not exist in Keycloak; "
                "it resolves to nobody",
                role,
                f" of client {client!r}" if client else "",
            )
            return None
        _require_id(rep, path)
        return rep

    async def _all_roles(self) -> list[Json]:
        """Every realm role and every client role, brief representations."""
        brief = {"briefRepresentation": "true"}
        roles = list(await self._get_all("/roles", brief) or [])
        for client in await self._get_all("/clients") or []:
            client_uuid = client.get("id")
            if isinstance(client_uuid, str):
                path = f"/clients/{_seg(client_uuid)}/roles"
                roles.extend(await self._get_all(path, brief) or [])
        return roles

    async def _roles_implying(self, target: Json) -> list[Json]:
        """`target` and every role whose composite closure contains it."""
        parents: dict[str, list[Json]] = {}
        for role in await self._all_roles():
            if not role.get("composite") or not isinstance(role.get("id"), str):
                continue
            path = f"/roles-by-id/{_seg(role['id'])}/composites"
            for child in await self._get_all(path) or []:
                if isinstance(child.get("id"), str):
                    parents.setdefault(child["id"], []).append(role)
        found: dict[str, Json] = {target["id"]: target}
        pending = [target]
        while pending:
            for parent in parents.get(pending.pop()["id"], []):
                if parent["id"] not in found:
                    found[parent["id"]] = parent
                    pending.append(parent)
        return list(found.values())

    # -- groups ------------------------------------------------------------------------------

    async def _members_of_trees(self, roots: Iterable[Json]) -> set[str]:
        """Enabled members of each group and of all its subgroups (each group read once)."""
        usernames: set[str] = set()
        visited: set[str] = set()
        pending = list(roots)
        while pending:
            group = pending.pop()
            group_id = group.get("id")
            if not isinstance(group_id, str) or group_id in visited:
                continue
            visited.add(group_id)
            members = await self._get_all(
                f"/groups/{_seg(group_id)}/members", {"briefRepresentation": "true"}
            )
            usernames.update(_enabled_usernames(members or []))
            pending.extend(await self._subgroups(group))
        return usernames

    async def _subgroups(self, group: Json) -> list[Json]:
        """The direct subgroups of `group`, across Keycloak versions.

        Keycloak 23+ gives `subGroupCount` and lists children at `GET /groups/{id}/children`
        (paged, default page 10). Older versions have no such endpoint (405) and inline the whole
        hierarchy as `subGroups` in the group's own representation.
        """
        group_id = group.get("id")
        if not isinstance(group_id, str):
            return []
        listed = [g for g in group.get("subGroups") or [] if isinstance(g, dict)]
        count = group.get("subGroupCount")
        if isinstance(count, int) and not isinstance(count, bool):
            if count <= 0:
                return []
            if len(listed) >= count:
                return listed
        elif listed:
            return listed
        children_path = f"/groups/{_seg(group_id)}/children"
        children = await self._get_all(
            children_path, {"briefRepresentation": "true"}, absent=frozenset({404, 405})
        )
        if children is not None:
            return children
        full = _as_object(await self._get(f"/groups/{_seg(group_id)}"), "group")
        if full is None:
            return []
        return [g for g in full.get("subGroups") or [] if isinstance(g, dict)]

    # -- HTTP --------------------------------------------------------------------------------

    async def _get_all(
        self,
        path: str,
        params: Params | None = None,
        *,
        absent: frozenset[int] = _NOT_FOUND,
    ) -> list[Json] | None:
        """Every item of a paged list (None when the resource does not exist)."""
        items: list[Json] = []
        seen: set[str] = set()
        first = 0
        while True:
            page = await self._get(
                path,
                {**(params or {}), "first": first, "max": self._page_size},
                absent=absent,
            )
            if page is None:
                return None if first == 0 else items
            if not isinstance(page, list):
                raise DirectoryUnavailable(
                    f"Keycloak answered GET {path} with a {type(page).__name__}, not a list"
                )
            fresh = 0
            for entry in page:
                if not isinstance(entry, dict):
                    raise DirectoryUnavailable(
                        f"Keycloak answered GET {path} with a list of {type(entry).__name__}"
                    )
                key = entry.get("id")
                if isinstance(key, str):
                    if key in seen:
                        continue
                    seen.add(key)
                fresh += 1
                items.append(entry)
            # A short page is the last one. A page with nothing new means the server ignored
            # `first` (it answered everything at once): stop rather than loop.
            if len(page) < self._page_size or fresh == 0:
                return items
            first += len(page)

    async def _get(
        self,
        path: str,
        params: Params | None = None,
        *,
        absent: frozenset[int] = _NOT_FOUND,
    ) -> Any:
        """The JSON body of `GET {admin_url}{path}`; None for a status in `absent` (not found)."""
        token = await self._token_for_call()
        response = await self._send(path, params, token)
        if response.status_code == 401:
            # Revoked, expired early or signed with a rotated key: refresh once and retry.
            token = await self._token_for_call(rejected=token)
            response = await self._send(path, params, token)
        status = response.status_code
        if status in absent:
            return None
        if status == 401:
            raise DirectoryUnavailable(
                f"Keycloak rejected a fresh service-account token for GET {path} (HTTP 401)"
            )
        if status == 403:
            raise DirectoryUnavailable(
                f"the Keycloak service account may not read {path} (HTTP 403): {ADMIN_ROLES_HINT}"
            )
        if not 200 <= status < 300:
            raise DirectoryUnavailable(f"Keycloak answered HTTP {status} to GET {path}")
        return _json_body(response, f"GET {path}")

    async def _send(
        self, path: str, params: Params | None, token: str
    ) -> BoundedAnswer:
        try:
            return await bounded_request(
                self._http,
                "GET",
                self.admin_url + path,
                deadline=self._timeout,
                max_bytes=MAX_ANSWER_BYTES,
                params=params,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/json",
                },
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise DirectoryUnavailable(
                f"Keycloak is unreachable (GET {path}): {_describe(exc)}"
            ) from exc

    # -- service-account token ---------------------------------------------------------------

    async def _token_for_call(self, rejected: str | None = None) -> str:
        """A valid admin token: the cached one, or a new one (one refresh at a time).

        `rejected` is a token Keycloak just refused: it is replaced, unless another call has
        already replaced it meanwhile.
        """
        async with self._token_lock:
            token = self._token
            if (
                token is not None
                and token != rejected
                and self._token_renew_at is not None
                and self._clock() < self._token_renew_at
            ):
                return token
            return await self._fetch_token()

    async def _fetch_token(self) -> str:
        try:
            response = await bounded_request(
                self._http,
                "POST",
                self.token_url,
                deadline=self._timeout,
                max_bytes=MAX_ANSWER_BYTES,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                },
                headers={"Accept": "application/json"},
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise DirectoryUnavailable(
                f"Keycloak's token endpoint is unreachable: {_describe(exc)}"
            ) from exc
        status = response.status_code
        if status in (400, 401, 403):
            raise DirectoryUnavailable(
                f"Keycloak refused the service-account credentials (HTTP {status}"
                f"{_oauth_error(response)}): check COUNTERSIGN_KEYCLOAK_CLIENT_ID and "
                "COUNTERSIGN_KEYCLOAK_CLIENT_SECRET, and that the client has service accounts enabled"
            )
        if not 200 <= status < 300:
            raise DirectoryUnavailable(
                f"Keycloak's token endpoint answered HTTP {status}"
            )
        body = _as_object(_json_body(response, "the token endpoint"), "token response")
        token = body.get("access_token") if body is not None else None
        if not isinstance(token, str) or not token:
            raise DirectoryUnavailable("Keycloak's token response has no access_token")
        lifetime = body.get("expires_in") if body is not None else None
        seconds = (
            float(lifetime)
            if isinstance(lifetime, int | float)
            and not isinstance(lifetime, bool)
            and lifetime > 0
            else DEFAULT_TOKEN_LIFETIME_SECONDS
        )
        margin = min(TOKEN_RENEW_MARGIN_SECONDS, seconds / 2)
        self._token = token
        self._token_renew_at = self._clock() + timedelta(seconds=seconds - margin)
        return token


def _seg(value: str) -> str:
    """One URL path segment."""
    return quote(value, safe="")


def _role_path(role: Json) -> str:
    """`/roles/{name}` for a realm role, `/clients/{uuid}/roles/{name}` for a client role."""
    name = _text(role.get("name"))
    if not name:
        raise DirectoryUnavailable("Keycloak returned a role without a name")
    if role.get("clientRole"):
        container = _text(role.get("containerId"))
        if not container:
            raise DirectoryUnavailable(
                f"Keycloak returned client role {name!r} without its client (containerId)"
            )
        return f"/clients/{_seg(container)}/roles/{_seg(name)}"
    return f"/roles/{_seg(name)}"


def _username_if_enabled(user: Json) -> str | None:
    # `enabled` is part of every user representation, brief ones included.
    if user.get("enabled") is False:
        return None
    return _text(user.get("username"))


def _enabled_usernames(users: Iterable[Json]) -> set[str]:
    return {name for name in map(_username_if_enabled, users) if name}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _as_object(value: Any, what: str) -> Json | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DirectoryUnavailable(
            f"Keycloak answered {what} with a {type(value).__name__}, not an object"
        )
    return value


def _require_id(rep: Json, what: str) -> None:
    if not isinstance(rep.get("id"), str):
        raise DirectoryUnavailable(f"Keycloak answered {what} without an id")


def _json_body(response: BoundedAnswer, what: str) -> Any:
    if not response.complete:
        raise DirectoryUnavailable(
            f"Keycloak answered {what} with more than {MAX_ANSWER_BYTES} bytes"
        )
    try:
        return response.json()
    except ValueError as exc:
        raise DirectoryUnavailable(
            f"Keycloak answered {what} with a body that is not JSON"
        ) from exc


def _oauth_error(response: BoundedAnswer) -> str:
    """`: invalid_client` from an OAuth error body, if there is one (never secrets)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return f": {error}" if isinstance(error, str) and error.isprintable() else ""


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
