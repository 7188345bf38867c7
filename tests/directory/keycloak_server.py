"""A loopback fake of the parts of Keycloak's admin REST API the directory adapter reads.

    realm = Realm("registry")
    realm.group("/districts/D1", roles=["district_officer"])
    realm.user("alice", groups=["/districts/D1"])
    with KeycloakServer(realm) as server:
        settings = server.settings()
        ...
        assert server.tokens_issued == 1

It is a real HTTP server (ThreadingHTTPServer on 127.0.0.1, port 0, in a daemon thread) speaking
Keycloak's paths, query parameters and JSON shapes:

- `POST /realms/{realm}/protocol/openid-connect/token`: the client-credentials grant; checks the
  client id and secret (form fields or HTTP Basic) and issues short-lived bearer tokens.
- `GET /admin/realms/{realm}/...`: `users`, `roles`, `roles/{name}`, `roles/{name}/users`,
  `roles/{name}/groups`, `roles/{name}/composites`, `roles-by-id/{id}`,
  `roles-by-id/{id}/composites`, `clients`, `clients/{uuid}/roles[/{name}[/users|/groups]]`,
  `groups`, `groups/{id}`, `groups/{id}/children`, `groups/{id}/members`,
  `group-by-path/{path}`. Every admin call needs a valid bearer token (401 otherwise).

Paging honours `first`/`max` with Keycloak's defaults (100; 10 for a group's children; realm and
client role lists and composites are unpaged unless asked). Like Keycloak, role and group member
lists include disabled users, and `roles/{name}/users` lists direct holders only.

`legacy_groups=True` answers like Keycloak before 23: no `GET groups/{id}/children` (405) and
the whole hierarchy inline as `subGroups`; otherwise like Keycloak 23+: `subGroupCount`, and
children listed only by the children endpoint.

Switches for outage tests: `go_down("refuse" | "503" | "garbage" | "slow")` and `come_back()`;
`page_delay` (seconds every admin call waits before it answers: a Keycloak slow page after
page, each call within its timeout) and `drip_seconds` (every answer is written one byte at a
time with this pause);
`revoke_tokens()` (every issued token becomes invalid, as after a key rotation) and
`reject_all_tokens` (even fresh tokens get 401). Every request is recorded in `requests`.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import SecretStr

from countersign.config import Settings

CLIENT_ID = "countersign-directory"
CLIENT_SECRET = "directory-secret"
DEFAULT_TOKEN_LIFETIME_SECONDS = 300

Json = dict[str, Any]
Outage = Literal["refuse", "503", "garbage", "slow"]


@dataclass
class Client:
    id: str
    client_id: str


@dataclass
class Role:
    id: str
    name: str
    description: str | None
    client: Client | None
    # Ids of the roles this composite role contains.
    composites: list[str] = field(default_factory=list)


@dataclass
class Group:
    id: str
    name: str
    path: str
    parent_id: str | None
    role_ids: set[str] = field(default_factory=set)


@dataclass
class User:
    id: str
    username: str
    email: str | None
    first_name: str | None
    last_name: str | None
    enabled: bool
    role_ids: set[str] = field(default_factory=set)
    group_ids: set[str] = field(default_factory=set)


class Realm:
    """Seed data. Roles are named `"name"` (realm role) or `"clientId:name"` (client role)."""

    def __init__(self, name: str = "registry", *, default_roles: bool = True) -> None:
        self.name = name
        self.id = str(uuid.uuid4())
        self.clients: dict[str, Client] = {}
        self.roles: dict[str, Role] = {}
        self.groups: dict[str, Group] = {}
        self.users: dict[str, User] = {}
        self.default_role: Role | None = None
        if default_roles:
            # What every new Keycloak realm has: a default composite role given to every user.
            self.role("offline_access")
            self.role("uma_authorization")
            self.default_role = self.role(
                f"default-roles-{name}",
                composites=["offline_access", "uma_authorization"],
            )
            self.role("realm-management:query-users")
            self.role("realm-management:query-groups")
            self.role(
                "realm-management:view-users",
                composites=[
                    "realm-management:query-users",
                    "realm-management:query-groups",
                ],
            )

    def client(self, client_id: str) -> Client:
        if client_id not in self.clients:
            self.clients[client_id] = Client(str(uuid.uuid4()), client_id)
        return self.clients[client_id]

    def role(
        self,
        ref: str,
        *,
        description: str | None = None,
        composites: Iterable[str] = (),
    ) -> Role:
        """The role `ref`, created if new; `composites` (refs) are added to it."""
        if ref not in self.roles:
            client_id, _, name = ref.rpartition(":")
            client = self.client(client_id) if client_id else None
            self.roles[ref] = Role(str(uuid.uuid4()), name, description, client)
        role = self.roles[ref]
        if description is not None:
            role.description = description
        for child in composites:
            child_id = self.role(child).id
            if child_id not in role.composites:
                role.composites.append(child_id)
        return role

    def group(self, path: str, *, roles: Iterable[str] = ()) -> Group:
        """The group at `path` (parents created as needed); `roles` are mapped to it."""
        parent: Group | None = None
        current = ""
        for name in [s for s in path.split("/") if s]:
            current = f"{current}/{name}"
            if current not in self.groups:
                self.groups[current] = Group(
                    str(uuid.uuid4()), name, current, parent.id if parent else None
                )
            parent = self.groups[current]
        assert parent is not None, f"not a group path: {path!r}"
        parent.role_ids.update(self.role(r).id for r in roles)
        return parent

    def user(
        self,
        username: str,
        *,
        roles: Iterable[str] = (),
        groups: Iterable[str] = (),
        enabled: bool = True,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> User:
        user = User(
            str(uuid.uuid4()),
            username,
            email if email is not None else f"{username}@example.org",
            first_name,
            last_name,
            enabled,
        )
        if self.default_role is not None:
            user.role_ids.add(self.default_role.id)
        user.role_ids.update(self.role(r).id for r in roles)
        user.group_ids.update(self.group(g).id for g in groups)
        self.users[username] = user
        return user

    def bulk_users(self, prefix: str, count: int, **kwargs: Any) -> list[str]:
        """`count` users named `{prefix}-0001`...; returns their usernames."""
        names = [f"{prefix}-{i:04d}" for i in range(1, count + 1)]
        for name in names:
            self.user(name, **kwargs)
        return names

    # lookups used by the server
    def role_by_id(self, role_id: str) -> Role | None:
        return next((r for r in self.roles.values() if r.id == role_id), None)

    def group_by_id(self, group_id: str) -> Group | None:
        return next((g for g in self.groups.values() if g.id == group_id), None)

    def children(self, group: Group | None) -> list[Group]:
        parent_id = group.id if group else None
        return sorted(
            (g for g in self.groups.values() if g.parent_id == parent_id),
            key=lambda g: g.name,
        )


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]


class _Reply(Exception):
    """Raised inside a handler to answer at once."""

    def __init__(self, status: int, body: Any = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class KeycloakServer:
    def __init__(
        self,
        realm: Realm | None = None,
        *,
        token_lifetime_seconds: int = DEFAULT_TOKEN_LIFETIME_SECONDS,
        legacy_groups: bool = False,
    ) -> None:
        self.realm = realm if realm is not None else Realm()
        self.token_lifetime_seconds = token_lifetime_seconds
        self.legacy_groups = legacy_groups
        self.reject_all_tokens = False
        self.slow_seconds = 3.0
        self.page_delay = 0.0
        self.drip_seconds = 0.0
        self._stopping = threading.Event()
        self._lock = threading.RLock()
        self._tokens: dict[str, float] = {}
        self._outage: Outage | None = None
        # Set while slow requests may answer (cleared by go_down("slow")).
        self._release = threading.Event()
        self._release.set()
        self.requests: list[Recorded] = []
        self.token_requests = 0
        self.tokens_issued = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- control -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, **overrides: Any) -> Settings:
        """Settings pointing the Keycloak directory at this server."""
        values: dict[str, Any] = {
            "env": "testing",
            "keycloak_url": self.url,
            "keycloak_realm": self.realm.name,
            "keycloak_client_id": CLIENT_ID,
            "keycloak_client_secret": SecretStr(CLIENT_SECRET),
        }
        values.update(overrides)
        return Settings(**values)

    @property
    def admin_requests(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/admin/")]

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.token_requests = 0
            self.tokens_issued = 0

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far (as a restart or key rotation would)."""
        with self._lock:
            self._tokens.clear()

    def go_down(self, how: Outage = "refuse") -> None:
        """`refuse`: stop listening; `503`: answer 503; `garbage`: 200 with HTML; `slow`: hang."""
        with self._lock:
            self._outage = how
        if how == "slow":
            self._release.clear()
        if how == "refuse":
            self._stop_serving()

    def come_back(self) -> None:
        with self._lock:
            was = self._outage
            self._outage = None
        self._release.set()
        if was == "refuse":
            self._serve()

    def start(self) -> KeycloakServer:
        self._serve()
        return self

    def stop(self) -> None:
        self._release.set()
        self._stopping.set()  # cut drips and page delays short
        self._stop_serving()

    def __enter__(self) -> KeycloakServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="fake-keycloak",
            daemon=True,
        )
        self._thread.start()

    def _stop_serving(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # -- requests ----------------------------------------------------------------------------

    def _handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, str]:
        parts = urlsplit(raw_path)
        query = {
            k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()
        }
        with self._lock:
            self.requests.append(Recorded(method, parts.path, query))
            outage = self._outage
        if outage == "slow":
            self._release.wait(self.slow_seconds)
        if outage == "503":
            return 503, b'{"error":"unavailable"}', "application/json"
        if outage == "garbage":
            return 200, b"<html>maintenance</html>", "text/html"
        try:
            segments = [unquote(s) for s in parts.path.split("/")[1:]]
            token_path = [
                "realms",
                self.realm.name,
                "protocol",
                "openid-connect",
                "token",
            ]
            if segments == token_path:
                if method != "POST":
                    raise _Reply(405)
                result: Any = self._token(headers, body)
            elif segments[:3] == ["admin", "realms", self.realm.name]:
                if method != "GET":
                    raise _Reply(405)
                self._authorize(headers)
                if self.page_delay:
                    self._stopping.wait(self.page_delay)
                with self._lock:
                    result = self._admin(segments[3:], query)
            else:
                raise _Reply(
                    404, {"error": "Unable to find matching target resource method"}
                )
        except _Reply as reply:
            payload = b"" if reply.body is None else json.dumps(reply.body).encode()
            return reply.status, payload, "application/json"
        return 200, json.dumps(result).encode(), "application/json"

    def _token(self, headers: dict[str, str], body: bytes) -> Json:
        form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        scheme, _, encoded = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        with self._lock:
            self.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            raise _Reply(400, {"error": "unsupported_grant_type"})
        if client_id != CLIENT_ID or secret != CLIENT_SECRET:
            raise _Reply(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "Invalid client or Invalid client credentials",
                },
            )
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_lifetime_seconds
            self.tokens_issued += 1
        return {
            "access_token": token,
            "expires_in": self.token_lifetime_seconds,
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "profile email",
        }

    def _authorize(self, headers: dict[str, str]) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        with self._lock:
            expires = self._tokens.get(token) if scheme.lower() == "bearer" else None
            valid = (
                expires is not None
                and time.monotonic() < expires
                and not self.reject_all_tokens
            )
        if not valid:
            raise _Reply(401, {"error": "HTTP 401 Unauthorized"})

    def _admin(self, segments: list[str], query: dict[str, str]) -> Any:
        realm = self.realm
        match segments:
            case ["users"]:
                return self._users(query)
            case ["roles"]:
                return self._role_list(
                    [r for r in realm.roles.values() if r.client is None], query
                )
            case ["roles", name, *rest]:
                return self._role_resource(self._realm_role(name), rest, query)
            case ["roles-by-id", role_id, *rest]:
                role = realm.role_by_id(role_id)
                if role is None:
                    raise _Reply(404, {"error": "Could not find role with id"})
                if rest == []:
                    return self._role_rep(role)
                if rest == ["composites"]:
                    return self._composites(role, query)
                raise _Reply(404)
            case ["clients"]:
                return self._clients(query)
            case ["clients", client_uuid, "roles", *rest]:
                client = next(
                    (c for c in realm.clients.values() if c.id == client_uuid), None
                )
                if client is None:
                    raise _Reply(404, {"error": "Could not find client"})
                if rest == []:
                    roles = [r for r in realm.roles.values() if r.client is client]
                    return self._role_list(roles, query)
                role = next(
                    (
                        r
                        for r in realm.roles.values()
                        if r.client is client and r.name == rest[0]
                    ),
                    None,
                )
                return self._role_resource(role, rest[1:], query)
            case ["groups"]:
                return self._top_groups(query)
            case ["groups", group_id, *rest]:
                group = realm.group_by_id(group_id)
                if group is None:
                    raise _Reply(404, {"error": "Could not find group by id"})
                return self._group_resource(group, rest, query)
            case ["group-by-path", *path]:
                group = realm.groups.get("/" + "/".join(s for s in path if s))
                if group is None:
                    raise _Reply(404, {"error": "Group path does not exist"})
                return self._group_rep(group)
        raise _Reply(404, {"error": "Unable to find matching target resource method"})

    # -- resources ---------------------------------------------------------------------------

    def _users(self, query: dict[str, str]) -> list[Json]:
        needle = query.get("search", "").strip("*").lower()
        users = sorted(self.realm.users.values(), key=lambda u: u.username)
        if needle:
            users = [
                u
                for u in users
                if any(
                    needle in (v or "").lower()
                    for v in (u.username, u.email, u.first_name, u.last_name)
                )
            ]
        return [self._user_rep(u) for u in _page(users, query)]

    def _realm_role(self, name: str) -> Role | None:
        return next(
            (
                r
                for r in self.realm.roles.values()
                if r.client is None and r.name == name
            ),
            None,
        )

    def _role_list(self, roles: list[Role], query: dict[str, str]) -> list[Json]:
        roles = sorted(roles, key=lambda r: r.name)
        needle = query.get("search", "").lower()
        if needle:
            roles = [r for r in roles if needle in r.name.lower()]
        if "first" in query or "max" in query or needle:
            roles = _page(roles, query)
        return [self._role_rep(r) for r in roles]

    def _role_resource(
        self, role: Role | None, rest: list[str], query: dict[str, str]
    ) -> Any:
        if role is None:
            raise _Reply(404, {"error": "Could not find role"})
        if rest == []:
            return self._role_rep(role)
        if rest == ["users"]:
            holders = sorted(
                (u for u in self.realm.users.values() if role.id in u.role_ids),
                key=lambda u: u.username,
            )
            return [self._user_rep(u) for u in _page(holders, query)]
        if rest == ["groups"]:
            groups = sorted(
                (g for g in self.realm.groups.values() if role.id in g.role_ids),
                key=lambda g: g.path,
            )
            return [self._group_flat(g) for g in _page(groups, query)]
        if rest == ["composites"]:
            return self._composites(role, query)
        raise _Reply(404)

    def _composites(self, role: Role, query: dict[str, str]) -> list[Json]:
        children = [
            c for c in map(self.realm.role_by_id, role.composites) if c is not None
        ]
        if "first" in query or "max" in query:
            children = _page(children, query)
        return [self._role_rep(c) for c in children]

    def _clients(self, query: dict[str, str]) -> list[Json]:
        clients = sorted(self.realm.clients.values(), key=lambda c: c.client_id)
        wanted = query.get("clientId")
        if wanted is not None:
            if query.get("search") == "true":
                clients = [c for c in clients if wanted.lower() in c.client_id.lower()]
            else:
                clients = [c for c in clients if c.client_id == wanted]
        return [
            {
                "id": c.id,
                "clientId": c.client_id,
                "enabled": True,
                "protocol": "openid-connect",
            }
            for c in _page(clients, query)
        ]

    def _top_groups(self, query: dict[str, str]) -> list[Json]:
        top = self.realm.children(None)
        needle = query.get("search", "").lower()
        if needle:
            # Keycloak answers the top-level groups leading to a match, with the branches that
            # lead to matches inline (populateHierarchy).
            pruned = [rep for g in top if (rep := self._matching_branch(g, needle))]
            return _page(pruned, query)
        return [self._group_rep(g) for g in _page(top, query)]

    def _matching_branch(self, group: Group, needle: str) -> Json | None:
        below = [
            rep
            for child in self.realm.children(group)
            if (rep := self._matching_branch(child, needle)) is not None
        ]
        if needle not in group.name.lower() and not below:
            return None
        rep = self._group_flat(group)
        rep["subGroups"] = below
        if not self.legacy_groups:
            rep["subGroupCount"] = len(self.realm.children(group))
        return rep

    def _group_resource(
        self, group: Group, rest: list[str], query: dict[str, str]
    ) -> Any:
        if rest == []:
            return self._group_rep(group)
        if rest == ["children"]:
            if self.legacy_groups:
                raise _Reply(405, {"error": "HTTP 405 Method Not Allowed"})
            children = _page(self.realm.children(group), query, default_max=10)
            return [self._group_rep(c) for c in children]
        if rest == ["members"]:
            members = sorted(
                (u for u in self.realm.users.values() if group.id in u.group_ids),
                key=lambda u: u.username,
            )
            return [self._user_rep(u) for u in _page(members, query)]
        raise _Reply(404)

    # -- representations ---------------------------------------------------------------------

    def _user_rep(self, user: User) -> Json:
        rep: Json = {
            "id": user.id,
            "username": user.username,
            "enabled": user.enabled,
            "emailVerified": False,
            "createdTimestamp": 1700000000000,
        }
        for key, value in (
            ("email", user.email),
            ("firstName", user.first_name),
            ("lastName", user.last_name),
        ):
            if value is not None:
                rep[key] = value
        return rep

    def _role_rep(self, role: Role) -> Json:
        rep: Json = {
            "id": role.id,
            "name": role.name,
            "composite": bool(role.composites),
            "clientRole": role.client is not None,
            "containerId": role.client.id if role.client else self.realm.id,
        }
        if role.description is not None:
            rep["description"] = role.description
        return rep

    def _group_flat(self, group: Group) -> Json:
        """A group without its hierarchy (as `roles/{name}/groups` answers)."""
        rep: Json = {"id": group.id, "name": group.name, "path": group.path}
        if not self.legacy_groups:
            rep["subGroups"] = []
        return rep

    def _group_rep(self, group: Group) -> Json:
        """A group as `groups/{id}`, `group-by-path` and the group lists answer it."""
        rep = self._group_flat(group)
        if self.legacy_groups:
            rep["subGroups"] = [self._group_rep(c) for c in self.realm.children(group)]
        else:
            rep["subGroupCount"] = len(self.realm.children(group))
        return rep

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        # HTTP/1.0 (the handler's default): one request per connection, so a server that goes
        # down is down for every client at once, pooled connections included.
        class Handler(BaseHTTPRequestHandler):
            def _respond(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload, content_type = owner._handle(
                    method, self.path, headers, body
                )
                try:
                    if owner.drip_seconds:
                        self._drip(status, payload, content_type)
                        return
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

            def _drip(self, status: int, payload: bytes, content_type: str) -> None:
                head = (
                    f"HTTP/1.0 {status} {self.responses[status][0]}\r\n"
                    f"Content-Type: {content_type}\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n"
                ).encode("latin-1")
                data = head + payload
                for index in range(len(data)):
                    self.wfile.write(data[index : index + 1])
                    if owner._stopping.wait(owner.drip_seconds):
                        return

            def do_GET(self) -> None:
                self._respond("GET")

            def do_POST(self) -> None:
                self._respond("POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler


def _page(
    items: Sequence[Any], query: dict[str, str], *, default_max: int = 100
) -> list[Any]:
    """Keycloak's `first`/`max` (negative values are ignored)."""
    first = _int(query.get("first"), 0)
    limit = _int(query.get("max"), default_max)
    first = max(first, 0)
    if limit < 0:
        return list(items[first:])
    return list(items[first : first + limit])


def _int(value: str | None, default: int) -> int:
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise _Reply(400, {"error": f"not a number: {value}"}) from None


# The realm most tests read. Who holds `district_officer`, and why:
#   alice, bob   directly                        erin   directly, but disabled
#   frank        `senior` (a composite containing district_officer)
#   gina         `chief` (contains `senior`, which contains district_officer: two levels)
#   hank         member of /board, a group holding `chief`
DISTRICT_OFFICERS = ["alice", "bob", "frank", "gina", "hank"]
# `district_reader` is mapped to /districts: members of its subgroups hold it too.
DISTRICT_READERS = ["alice", "bob", "frank"]
# `director`: carol directly, dave through /finance (mona is in /finance but disabled).
DIRECTORS = ["carol", "dave"]
# The client role `registry:checker`: ivan directly, judy through the realm composite `auditor`,
# kate through /registry-team, leo through the client composite `registry:lead`.
REGISTRY_CHECKERS = ["ivan", "judy", "kate", "leo"]
ENABLED_USERS = sorted(
    {*DISTRICT_OFFICERS, *DISTRICT_READERS, *DIRECTORS, *REGISTRY_CHECKERS}
)
DISABLED_USERS = ["erin", "mona"]


def seeded_realm(name: str = "registry") -> Realm:
    realm = Realm(name)
    realm.role("district_officer", description="Approves changes in a district")
    realm.role("district_reader", description="Reads district records")
    realm.role("director", description="Signs off large changes")
    realm.role("senior", composites=["district_officer"])
    realm.role("chief", composites=["senior"])
    realm.role("registry:checker", description="Checks registry changes")
    realm.role("registry:lead", composites=["registry:checker"])
    realm.role("auditor", composites=["registry:checker"])
    realm.client("payments")
    realm.group("/districts", roles=["district_reader"])
    realm.group("/districts/D1/north")
    realm.group("/districts/D2")
    realm.group("/finance", roles=["director"])
    realm.group("/board", roles=["chief"])
    realm.group("/registry-team", roles=["registry:checker"])

    realm.user(
        "alice",
        roles=["district_officer"],
        groups=["/districts/D1"],
        first_name="Alice",
        last_name="Archer",
    )
    realm.user("bob", roles=["district_officer"], groups=["/districts/D2"])
    realm.user("carol", roles=["director"], first_name="Carol")
    realm.user("dave", groups=["/finance"])
    realm.user(
        "erin", roles=["district_officer"], groups=["/districts/D1"], enabled=False
    )
    realm.user("frank", roles=["senior"], groups=["/districts/D1/north"])
    realm.user("gina", roles=["chief"])
    realm.user("hank", groups=["/board"])
    realm.user("ivan", roles=["registry:checker"])
    realm.user("judy", roles=["auditor"])
    realm.user("kate", groups=["/registry-team"])
    realm.user("leo", roles=["registry:lead"])
    realm.user("mona", groups=["/finance"], enabled=False)
    return realm
