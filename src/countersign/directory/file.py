"""Directory backed by a YAML file (`COUNTERSIGN_DIRECTORY_FILE`), for the embedded mode and tests.

The file is re-read when it changes on disk, so editing it takes effect without a restart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from countersign.directory.base import DirectoryGroup, DirectoryRole, DirectoryUser
from countersign.errors import DirectoryUnavailable


@dataclass
class _Snapshot:
    users: list[dict[str, Any]] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)


def _in_group(user_groups: list[str], path: str) -> bool:
    """Membership of `path` includes membership of any of its subgroups."""
    prefix = path.rstrip("/") + "/"
    return any(g == path or g.startswith(prefix) for g in user_groups)


class FileDirectory:
    is_local = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: float | None = None
        self._snapshot = _Snapshot()

    def _load(self) -> _Snapshot:
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError as exc:
            raise DirectoryUnavailable(
                f"directory file {self.path} cannot be read: {exc.strerror}"
            ) from exc
        if mtime != self._mtime:
            try:
                data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise DirectoryUnavailable(
                    f"directory file {self.path} is not valid YAML"
                ) from exc
            if not isinstance(data, dict):
                raise DirectoryUnavailable(
                    f"directory file {self.path} must be a mapping"
                )
            self._snapshot = _Snapshot(
                users=list(data.get("users") or []),
                roles=list(data.get("roles") or []),
                groups=list(data.get("groups") or []),
                clients=[str(c) for c in data.get("clients") or []],
            )
            self._mtime = mtime
        return self._snapshot

    def _enabled_users(self) -> list[dict[str, Any]]:
        return [
            u
            for u in self._load().users
            if u.get("enabled", True) and u.get("username")
        ]

    def _composites(self) -> dict[str, list[str]]:
        return {
            str(r["name"]): list(r.get("composites") or [])
            for r in self._load().roles
            if "name" in r
        }

    def _effective_roles(self, user: dict[str, Any]) -> set[str]:
        """Direct roles, roles of the user's groups (and their parents), expanded through composites."""
        direct = set(user.get("roles") or [])
        user_groups = list(user.get("groups") or [])
        for group in self._load().groups:
            path = str(group.get("path", ""))
            if path and any(
                g == path or g.startswith(path.rstrip("/") + "/") for g in user_groups
            ):
                direct.update(group.get("roles") or [])
        composites = self._composites()
        seen: set[str] = set()
        pending = list(direct)
        while pending:
            role = pending.pop()
            if role in seen:
                continue
            seen.add(role)
            pending.extend(composites.get(role, []))
        return seen

    async def users_with_role(self, role: str, client: str | None = None) -> list[str]:
        # Client roles are written "client:role" in the file.
        wanted = f"{client}:{role}" if client else role
        return [
            str(u["username"])
            for u in self._enabled_users()
            if wanted in self._effective_roles(u)
        ]

    async def users_in_group(self, path: str) -> list[str]:
        return [
            str(u["username"])
            for u in self._enabled_users()
            if _in_group(list(u.get("groups") or []), path)
        ]

    async def search_users(self, q: str | None = None) -> list[DirectoryUser]:
        needle = (q or "").lower()
        found = []
        for u in self._enabled_users():
            fields = [str(u.get(k) or "") for k in ("username", "email", "name")]
            if not needle or any(needle in f.lower() for f in fields):
                found.append(
                    DirectoryUser(
                        str(u["username"]),
                        str(u["username"]),
                        u.get("email"),
                        u.get("name"),
                    )
                )
        return found

    async def list_roles(
        self, client: str | None = None, q: str | None = None
    ) -> list[DirectoryRole]:
        needle = (q or "").lower()
        roles = []
        for r in self._load().roles:
            name = str(r.get("name", ""))
            role_client, _, bare = name.rpartition(":")
            if (client or "") != role_client:
                continue
            if needle and needle not in bare.lower():
                continue
            roles.append(DirectoryRole(bare, r.get("description"), role_client or None))
        return roles

    async def list_groups(self, q: str | None = None) -> list[DirectoryGroup]:
        needle = (q or "").lower()
        groups = []
        for g in self._load().groups:
            path = str(g.get("path", ""))
            if path and (not needle or needle in path.lower()):
                groups.append(DirectoryGroup(path, path.rstrip("/").rsplit("/", 1)[-1]))
        return groups

    async def list_clients(self) -> list[str]:
        return list(self._load().clients)


class EmptyDirectory:
    is_local = True

    """No directory configured: role and group rules resolve nobody; pickers are unavailable."""

    async def users_with_role(self, role: str, client: str | None = None) -> list[str]:
        raise DirectoryUnavailable(
            "no directory is configured (COUNTERSIGN_DIRECTORY_FILE or COUNTERSIGN_KEYCLOAK_URL)"
        )

    async def users_in_group(self, path: str) -> list[str]:
        raise DirectoryUnavailable(
            "no directory is configured (COUNTERSIGN_DIRECTORY_FILE or COUNTERSIGN_KEYCLOAK_URL)"
        )

    async def search_users(self, q: str | None = None) -> list[DirectoryUser]:
        raise DirectoryUnavailable("no directory is configured")

    async def list_roles(
        self, client: str | None = None, q: str | None = None
    ) -> list[DirectoryRole]:
        raise DirectoryUnavailable("no directory is configured")

    async def list_groups(self, q: str | None = None) -> list[DirectoryGroup]:
        raise DirectoryUnavailable("no directory is configured")

    async def list_clients(self) -> list[str]:
        raise DirectoryUnavailable("no directory is configured")
