"""The directory file (`COUNTERSIGN_DIRECTORY_FILE`): the embedded mode's Keycloak.

It answers rules the way the Keycloak adapter does: roles held directly, through a group or a
parent group, or through composites; client roles written `client:role`; disabled users left
out. It is re-read when it changes, and a file that cannot be read is an outage.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from countersign.directory.base import DirectoryGroup, DirectoryRole, DirectoryUser
from countersign.directory.file import FileDirectory
from countersign.errors import DirectoryUnavailable

FIXTURE_FILE = Path(__file__).parents[1] / "fixtures" / "directory.yaml"

DIRECTORY: dict[str, Any] = {
    "users": [
        {
            "username": "alice",
            "email": "alice@example.org",
            "name": "Alice Archer",
            "roles": ["district_officer"],
            "groups": ["/districts/D1"],
        },
        {"username": "bob", "roles": [], "groups": ["/districts/D10"]},
        {"username": "carol", "roles": ["chief"], "groups": []},
        {"username": "dave", "groups": ["/districts/D1/north"]},
        {"username": "erin", "enabled": False, "roles": ["district_officer"]},
        {"username": "frank", "roles": ["registry:checker"]},
        {"username": "gina", "roles": ["auditor"]},
        {"username": "hank", "groups": ["/finance"]},
    ],
    "roles": [
        {"name": "district_officer", "description": "Approves district changes"},
        {"name": "district_reader"},
        {"name": "senior", "composites": ["district_officer"]},
        {"name": "chief", "composites": ["senior"]},
        {"name": "auditor", "composites": ["registry:checker"]},
        {"name": "registry:checker", "description": "Checks registry changes"},
        {"name": "director"},
    ],
    "groups": [
        {"path": "/districts", "roles": ["district_reader"]},
        {"path": "/districts/D1"},
        {"path": "/districts/D1/north"},
        {"path": "/districts/D10"},
        {"path": "/finance", "roles": ["senior"]},
    ],
    "clients": ["registry", "payments"],
}


def write(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def directory(tmp_path: Path) -> FileDirectory:
    return FileDirectory(write(tmp_path / "directory.yaml", DIRECTORY))


async def test_a_role_is_held_directly_through_groups_and_parent_groups(
    directory: FileDirectory,
) -> None:
    # /districts holds district_reader: alice (D1), bob (D10) and dave (D1/north) hold it.
    assert await directory.users_with_role("district_reader") == [
        "alice",
        "bob",
        "dave",
    ]


async def test_composite_roles_count_transitively(directory: FileDirectory) -> None:
    # carol holds chief (contains senior, which contains district_officer); hank is in
    # /finance, which holds senior.
    assert await directory.users_with_role("district_officer") == [
        "alice",
        "carol",
        "hank",
    ]


async def test_client_roles_are_written_client_colon_role(
    directory: FileDirectory,
) -> None:
    # frank holds it directly, gina through the realm composite `auditor`.
    assert await directory.users_with_role("checker", client="registry") == [
        "frank",
        "gina",
    ]
    assert await directory.users_with_role("checker") == []


async def test_disabled_users_are_left_out(directory: FileDirectory) -> None:
    assert "erin" not in await directory.users_with_role("district_officer")
    assert "erin" not in [u.user_id for u in await directory.search_users()]


async def test_a_group_includes_its_subgroups_but_not_look_alike_siblings(
    directory: FileDirectory,
) -> None:
    assert await directory.users_in_group("/districts") == ["alice", "bob", "dave"]
    # /districts/D10 is not inside /districts/D1.
    assert await directory.users_in_group("/districts/D1") == ["alice", "dave"]
    assert await directory.users_in_group("/nowhere") == []


async def test_pickers(directory: FileDirectory) -> None:
    assert await directory.search_users("archer") == [
        DirectoryUser("alice", "alice", "alice@example.org", "Alice Archer")
    ]
    assert await directory.list_roles(q="district") == [
        DirectoryRole("district_officer", "Approves district changes"),
        DirectoryRole("district_reader", None),
    ]
    assert await directory.list_roles(client="registry") == [
        DirectoryRole("checker", "Checks registry changes", "registry")
    ]
    assert await directory.list_groups(q="d1") == [
        DirectoryGroup("/districts/D1", "D1"),
        DirectoryGroup("/districts/D1/north", "north"),
        DirectoryGroup("/districts/D10", "D10"),
    ]
    assert await directory.list_clients() == ["registry", "payments"]


async def test_an_edited_file_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    path = write(tmp_path / "directory.yaml", DIRECTORY)
    directory = FileDirectory(path)
    assert await directory.users_in_group("/finance") == ["hank"]
    edited = dict(DIRECTORY)
    edited["users"] = [
        *DIRECTORY["users"],
        {"username": "ivan", "groups": ["/finance"]},
    ]
    write(path, edited)
    # Make the change visible even on filesystems with coarse modification times.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert await directory.users_in_group("/finance") == ["hank", "ivan"]


async def test_a_missing_file_is_an_outage(tmp_path: Path) -> None:
    directory = FileDirectory(tmp_path / "absent.yaml")
    with pytest.raises(DirectoryUnavailable, match="cannot be read"):
        await directory.users_with_role("district_officer")
    with pytest.raises(DirectoryUnavailable):
        await directory.search_users()


@pytest.mark.parametrize(
    ("content", "problem"),
    [("users: [unclosed", "not valid YAML"), ("- a list", "must be a mapping")],
)
async def test_a_broken_file_is_an_outage(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DirectoryUnavailable, match=problem):
        await FileDirectory(path).users_in_group("/districts")


async def test_the_test_suites_directory_file_resolves_as_the_engine_tests_expect() -> (
    None
):
    directory = FileDirectory(FIXTURE_FILE)
    # frank holds `senior`, a composite containing district_officer; erin is disabled.
    assert await directory.users_with_role("district_officer") == [
        "alice",
        "bob",
        "frank",
    ]
    assert await directory.users_with_role("checker", client="registry") == ["dave"]
    assert await directory.users_in_group("/districts/D1") == ["alice", "frank"]


async def test_pickers_over_http_read_the_directory_file(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    user_headers: dict[str, str],
) -> None:
    users = await client.get("/v1/admin/directory/users?q=ali", headers=viewer_headers)
    assert users.status_code == 200, users.text
    assert users.json() == [
        {
            "user_id": "alice",
            "username": "alice",
            "email": "alice@example.org",
            "name": "Alice",
        }
    ]
    roles = await client.get(
        "/v1/awe/admin/keycloak/roles?client=registry", headers=admin_headers
    )
    assert roles.json() == [
        {"name": "checker", "description": None, "client": "registry"}
    ]
    groups = await client.get("/v1/admin/directory/groups?q=D1", headers=admin_headers)
    assert [g["path"] for g in groups.json()] == [
        "/districts/D1",
        "/districts/D1/north",
    ]
    clients = await client.get("/v1/admin/directory/clients", headers=admin_headers)
    assert clients.json() == [{"client_id": "registry"}]
    forbidden = await client.get("/v1/admin/directory/users", headers=user_headers)
    assert forbidden.status_code == 403
