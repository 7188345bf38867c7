"""The directory: who holds a role, who is in a group, and the pickers of the policy editor.

Two adapters implement it: the directory file (embedded mode, tests) and Keycloak's admin API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class DirectoryUser:
    user_id: str
    username: str
    email: str | None
    name: str | None


@dataclass(frozen=True)
class DirectoryRole:
    name: str
    description: str | None
    client: str | None = None


@dataclass(frozen=True)
class DirectoryGroup:
    path: str
    name: str


class Directory(Protocol):
    # True when answering never leaves the process (the directory file): the engine then resolves
    # role and group rules inside the command's transaction instead of before it.
    is_local: bool

    async def users_with_role(self, role: str, client: str | None = None) -> list[str]:
        """Every enabled user holding the role (directly, through a group or a composite)."""
        ...

    async def users_in_group(self, path: str) -> list[str]:
        """Every enabled member of the group and its subgroups."""
        ...

    async def search_users(self, q: str | None = None) -> list[DirectoryUser]: ...

    async def list_roles(
        self, client: str | None = None, q: str | None = None
    ) -> list[DirectoryRole]: ...

    async def list_groups(self, q: str | None = None) -> list[DirectoryGroup]: ...

    async def list_clients(self) -> list[str]: ...
