"""The Keycloak directory, against a loopback server speaking Keycloak's admin REST API.

Each rule type finds every user a realm admin would expect (direct holders, group members,
subgroup members, composite holders), all pages included; the service-account token is reused and
renewed; resolutions are cached per rule; an unreachable or misbehaving Keycloak is an outage
(`DirectoryUnavailable`), a role or group that does not exist is nobody.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from countersign.config import Settings
from countersign.directory.base import DirectoryGroup, DirectoryRole, DirectoryUser
from countersign.directory.cache import CachedDirectory, close_directory
from countersign.directory.file import FileDirectory
from countersign.directory.keycloak import KeycloakDirectory
from countersign.directory.resolver import ApproverResolver, ResolutionFailed
from countersign.errors import DirectoryUnavailable
from countersign.policies.rules import RuleEvaluator
from countersign.wiring import build_directory

from .keycloak_server import (
    CLIENT_SECRET,
    DIRECTORS,
    DISTRICT_OFFICERS,
    DISTRICT_READERS,
    ENABLED_USERS,
    REGISTRY_CHECKERS,
    KeycloakServer,
    Outage,
    Realm,
    seeded_realm,
)


class FakeClock:
    """The service clock, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def keycloak() -> Iterator[KeycloakServer]:
    with KeycloakServer(seeded_realm()) as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def directory(
    keycloak: KeycloakServer, clock: FakeClock
) -> AsyncIterator[KeycloakDirectory]:
    directory = KeycloakDirectory(keycloak.settings(), clock=clock)
    yield directory
    await directory.aclose()


def paged_queries(server: KeycloakServer, suffix: str) -> list[dict[str, str]]:
    """The query strings of the admin calls whose path ends with `suffix`."""
    return [r.query for r in server.admin_requests if r.path.endswith(suffix)]


# -- role rules ------------------------------------------------------------------------------


async def test_a_role_is_found_on_users_holding_it_directly(
    directory: KeycloakDirectory,
) -> None:
    assert "carol" in await directory.users_with_role("director")


async def test_a_role_mapped_to_a_group_is_held_by_its_members(
    directory: KeycloakDirectory,
) -> None:
    assert await directory.users_with_role("director") == DIRECTORS


async def test_a_role_mapped_to_a_parent_group_is_held_by_members_of_its_subgroups(
    directory: KeycloakDirectory,
) -> None:
    # /districts holds district_reader; alice is in /districts/D1, bob in /districts/D2 and
    # frank in /districts/D1/north, two levels down.
    assert await directory.users_with_role("district_reader") == DISTRICT_READERS


async def test_composite_roles_count_transitively_for_users_and_groups(
    directory: KeycloakDirectory,
) -> None:
    # frank holds `senior` (contains district_officer), gina holds `chief` (contains `senior`),
    # hank is in /board, which holds `chief`.
    assert await directory.users_with_role("district_officer") == DISTRICT_OFFICERS
    assert await directory.users_with_role("chief") == ["gina", "hank"]


async def test_a_client_role_is_found_directly_through_groups_and_composites(
    directory: KeycloakDirectory,
) -> None:
    assert (
        await directory.users_with_role("checker", client="registry")
        == REGISTRY_CHECKERS
    )
    # A client role is not a realm role of the same name.
    assert await directory.users_with_role("checker") == []


async def test_a_role_in_the_realm_default_roles_is_held_by_every_enabled_user(
    directory: KeycloakDirectory,
) -> None:
    assert await directory.users_with_role("offline_access") == ENABLED_USERS


async def test_disabled_users_are_left_out_of_role_and_group_rules(
    directory: KeycloakDirectory,
) -> None:
    # erin holds district_officer and is in /districts/D1; mona is in /finance. Both disabled.
    assert "erin" not in await directory.users_with_role("district_officer")
    assert "erin" not in await directory.users_with_role("district_reader")
    assert "mona" not in await directory.users_with_role("director")
    assert await directory.users_in_group("/finance") == ["dave"]


async def test_hundreds_of_role_holders_come_back_across_pages(
    clock: FakeClock,
) -> None:
    realm = Realm()
    realm.group("/pool", roles=["clerk"])
    direct = realm.bulk_users("direct", 260, roles=["clerk"])
    pooled = realm.bulk_users("pooled", 230, groups=["/pool"])
    realm.bulk_users("idle", 20, roles=["clerk"], enabled=False)
    with KeycloakServer(realm) as server:
        directory = KeycloakDirectory(server.settings(), clock=clock)
        try:
            users = await directory.users_with_role("clerk")
        finally:
            await directory.aclose()
    assert users == sorted(direct + pooled)
    # Past Keycloak's default page of 100 and past 200: three pages each, `max` always sent.
    role_pages = paged_queries(server, "/roles/clerk/users")
    assert [q["first"] for q in role_pages] == ["0", "100", "200"]
    assert {q["max"] for q in role_pages} == {"100"}
    member_pages = paged_queries(server, "/members")
    assert [q["first"] for q in member_pages] == ["0", "100", "200"]


async def test_a_role_that_does_not_exist_resolves_to_nobody_with_a_warning(
    directory: KeycloakDirectory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="countersign.directory.keycloak"):
        assert await directory.users_with_role("no_such_role") == []
        assert await directory.users_with_role("checker", client="no-such-client") == []
        assert await directory.users_with_role("no_such_role", client="registry") == []
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "no_such_role" in messages
    assert "no-such-client" in messages


# -- group rules -----------------------------------------------------------------------------


async def test_a_group_rule_includes_members_of_every_subgroup(
    directory: KeycloakDirectory,
) -> None:
    assert await directory.users_in_group("/districts") == ["alice", "bob", "frank"]


async def test_a_group_rule_by_nested_path_covers_that_branch_only(
    directory: KeycloakDirectory,
) -> None:
    assert await directory.users_in_group("/districts/D1") == ["alice", "frank"]
    assert await directory.users_in_group("/districts/D1/north") == ["frank"]
    # The leading and trailing slashes are optional.
    assert await directory.users_in_group("districts/D1/") == ["alice", "frank"]


async def test_a_group_that_does_not_exist_resolves_to_nobody_with_a_warning(
    directory: KeycloakDirectory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="countersign.directory.keycloak"):
        assert await directory.users_in_group("/districts/D9") == []
        assert await directory.users_in_group("/") == []
    assert "/districts/D9" in " ".join(r.getMessage() for r in caplog.records)


async def test_subgroups_beyond_one_page_of_children_are_all_walked(
    clock: FakeClock,
) -> None:
    realm = Realm()
    for i in range(1, 26):
        realm.user(f"officer-{i:02d}", groups=[f"/regions/R{i:02d}"])
    realm.user("deep", groups=["/regions/R07/east/farm"])
    realm.role("regional")
    realm.group("/regions", roles=["regional"])
    with KeycloakServer(realm) as server:
        # Small pages make the children list (25 groups) span three pages.
        directory = KeycloakDirectory(server.settings(), clock=clock, page_size=10)
        try:
            in_group = await directory.users_in_group("/regions")
            with_role = await directory.users_with_role("regional")
        finally:
            await directory.aclose()
    expected = sorted([f"officer-{i:02d}" for i in range(1, 26)] + ["deep"])
    assert in_group == expected
    assert with_role == expected
    children_pages = [
        q["first"] for q in paged_queries(server, "/children") if q["first"] != "0"
    ]
    assert "10" in children_pages
    assert "20" in children_pages


async def test_keycloak_before_23_without_a_children_endpoint_gives_the_same_answers(
    clock: FakeClock,
) -> None:
    with KeycloakServer(seeded_realm(), legacy_groups=True) as server:
        directory = KeycloakDirectory(server.settings(), clock=clock)
        try:
            assert await directory.users_in_group("/districts") == [
                "alice",
                "bob",
                "frank",
            ]
            assert (
                await directory.users_with_role("district_reader") == DISTRICT_READERS
            )
            assert [g.path for g in await directory.list_groups()] == [
                "/board",
                "/districts",
                "/districts/D1",
                "/districts/D1/north",
                "/districts/D2",
                "/finance",
                "/registry-team",
            ]
        finally:
            await directory.aclose()


# -- pickers ---------------------------------------------------------------------------------


async def test_user_search_returns_enabled_users_with_their_names(
    directory: KeycloakDirectory,
) -> None:
    assert await directory.search_users("ali") == [
        DirectoryUser("alice", "alice", "alice@example.org", "Alice Archer")
    ]
    everyone = await directory.search_users()
    assert [u.user_id for u in everyone] == ENABLED_USERS
    assert await directory.search_users("erin") == []


async def test_role_lists_are_realm_roles_or_one_clients_roles(
    directory: KeycloakDirectory,
) -> None:
    assert await directory.list_roles(q="district") == [
        DirectoryRole("district_officer", "Approves changes in a district"),
        DirectoryRole("district_reader", "Reads district records"),
    ]
    assert await directory.list_roles(client="registry") == [
        DirectoryRole("checker", "Checks registry changes", "registry"),
        DirectoryRole("lead", None, "registry"),
    ]
    assert await directory.list_roles(client="no-such-client") == []


async def test_group_lists_are_flat_paths_filtered_by_q(
    directory: KeycloakDirectory,
) -> None:
    assert await directory.list_groups(q="d1") == [
        DirectoryGroup("/districts/D1", "D1"),
    ]
    assert await directory.list_groups(q="north") == [
        DirectoryGroup("/districts/D1/north", "north")
    ]
    paths = [g.path for g in await directory.list_groups()]
    assert paths == [
        "/board",
        "/districts",
        "/districts/D1",
        "/districts/D1/north",
        "/districts/D2",
        "/finance",
        "/registry-team",
    ]


async def test_client_list_has_every_client_id(directory: KeycloakDirectory) -> None:
    clients = await directory.list_clients()
    assert {"registry", "payments", "realm-management"} <= set(clients)


# -- the service-account token ---------------------------------------------------------------


async def test_one_token_serves_many_calls(
    directory: KeycloakDirectory, keycloak: KeycloakServer
) -> None:
    await directory.users_with_role("district_officer")
    await directory.users_in_group("/districts")
    await directory.search_users("a")
    assert keycloak.tokens_issued == 1
    assert keycloak.token_requests == 1


async def test_the_token_is_renewed_shortly_before_it_expires(
    directory: KeycloakDirectory, keycloak: KeycloakServer, clock: FakeClock
) -> None:
    # The fake issues tokens for 300 s; the directory renews them 30 s early.
    await directory.users_in_group("/finance")
    clock.advance(265)
    await directory.users_in_group("/finance")
    assert keycloak.tokens_issued == 1
    clock.advance(10)
    await directory.users_in_group("/finance")
    assert keycloak.tokens_issued == 2


async def test_concurrent_calls_share_one_token_request(
    directory: KeycloakDirectory, keycloak: KeycloakServer
) -> None:
    results = await asyncio.gather(
        *(directory.users_in_group("/districts") for _ in range(10))
    )
    assert all(r == ["alice", "bob", "frank"] for r in results)
    assert keycloak.token_requests == 1


async def test_a_rejected_token_is_renewed_once_and_the_call_retried(
    directory: KeycloakDirectory, keycloak: KeycloakServer
) -> None:
    await directory.users_in_group("/finance")
    keycloak.revoke_tokens()  # a Keycloak restart or key rotation
    keycloak.reset_counts()
    assert await directory.users_in_group("/finance") == ["dave"]
    assert keycloak.tokens_issued == 1
    # The refused call was sent twice: once with the old token, once with the new one.
    by_path = [r.path for r in keycloak.admin_requests]
    assert by_path[0] == by_path[1]
    assert by_path[0].endswith("/group-by-path/finance")


async def test_a_token_refused_twice_is_an_outage_not_a_loop(
    directory: KeycloakDirectory, keycloak: KeycloakServer
) -> None:
    keycloak.reject_all_tokens = True
    with pytest.raises(DirectoryUnavailable, match="HTTP 401"):
        await directory.users_in_group("/finance")
    assert keycloak.token_requests == 2
    assert len(keycloak.admin_requests) == 2


async def test_wrong_client_credentials_are_an_outage_that_says_what_to_fix(
    keycloak: KeycloakServer, clock: FakeClock
) -> None:
    settings = keycloak.settings(keycloak_client_secret=SecretStr("wrong-secret"))
    directory = KeycloakDirectory(settings, clock=clock)
    try:
        with pytest.raises(DirectoryUnavailable) as raised:
            await directory.users_with_role("director")
    finally:
        await directory.aclose()
    assert "invalid_client" in raised.value.message
    assert "COUNTERSIGN_KEYCLOAK_CLIENT_SECRET" in raised.value.message
    assert "wrong-secret" not in raised.value.message
    assert CLIENT_SECRET not in raised.value.message


# -- outages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["refuse", "503", "garbage"])
async def test_an_unusable_keycloak_is_an_outage_until_it_comes_back(
    directory: KeycloakDirectory, keycloak: KeycloakServer, how: Outage
) -> None:
    keycloak.go_down(how)
    with pytest.raises(DirectoryUnavailable, match="Keycloak"):
        await directory.users_with_role("director")
    with pytest.raises(DirectoryUnavailable, match="Keycloak"):
        await directory.users_in_group("/finance")
    with pytest.raises(DirectoryUnavailable, match="Keycloak"):
        await directory.search_users()
    keycloak.come_back()
    assert await directory.users_with_role("director") == DIRECTORS


async def test_an_outage_after_the_token_was_issued_is_an_outage_too(
    directory: KeycloakDirectory, keycloak: KeycloakServer
) -> None:
    await directory.users_in_group("/finance")
    keycloak.go_down("503")
    with pytest.raises(DirectoryUnavailable, match="HTTP 503"):
        await directory.users_in_group("/finance")
    keycloak.come_back()


async def test_a_keycloak_that_does_not_answer_in_time_is_an_outage(
    keycloak: KeycloakServer, clock: FakeClock
) -> None:
    directory = KeycloakDirectory(
        keycloak.settings(keycloak_timeout_seconds=0.2), clock=clock
    )
    keycloak.go_down("slow")
    try:
        with pytest.raises(DirectoryUnavailable, match="Timeout"):
            await directory.users_in_group("/finance")
    finally:
        keycloak.come_back()
        await directory.aclose()


async def test_a_keycloak_dripping_its_answer_is_cut_off_at_the_call_timeout(
    keycloak: KeycloakServer, clock: FakeClock
) -> None:
    # Each byte comes well within any per-read timeout; the whole answer never within 0.5 s.
    directory = KeycloakDirectory(
        keycloak.settings(keycloak_timeout_seconds=0.5), clock=clock
    )
    keycloak.drip_seconds = 0.05
    started = asyncio.get_running_loop().time()
    try:
        async with asyncio.timeout(10):
            with pytest.raises(DirectoryUnavailable, match="Timeout"):
                await directory.users_in_group("/finance")
    finally:
        keycloak.drip_seconds = 0
        await directory.aclose()
    assert asyncio.get_running_loop().time() - started < 3


async def test_a_keycloak_slow_page_after_page_is_given_up_after_the_budget(
    clock: FakeClock,
) -> None:
    # Every page comes within the per-call timeout; all the pages together take about 3 s.
    realm = Realm()
    realm.group("/big")
    realm.bulk_users("member", 30, groups=["/big"])
    with KeycloakServer(realm) as keycloak:
        directory = KeycloakDirectory(
            keycloak.settings(
                keycloak_timeout_seconds=1.0, keycloak_budget_seconds=1.0
            ),
            clock=clock,
            page_size=2,
        )
        keycloak.page_delay = 0.2
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(10):
                with pytest.raises(
                    DirectoryUnavailable,
                    match="within 1 s .COUNTERSIGN_KEYCLOAK_BUDGET_SECONDS",
                ):
                    await directory.users_in_group("/big")
        finally:
            await directory.aclose()
        elapsed = asyncio.get_running_loop().time() - started
        pages = len(paged_queries(keycloak, "/members"))
    assert elapsed < 2.5
    assert pages < 15  # given up part way, not every page read


async def test_an_answer_larger_than_the_bound_is_an_outage_not_read_whole(
    clock: FakeClock,
) -> None:
    # One page of 100 members of 50 KB each: 5 MB, more than the 4 MiB read of one answer.
    realm = Realm()
    realm.group("/big")
    realm.bulk_users("member", 100, groups=["/big"], first_name="x" * 50_000)
    with KeycloakServer(realm) as keycloak:
        directory = KeycloakDirectory(keycloak.settings(), clock=clock)
        try:
            with pytest.raises(
                DirectoryUnavailable, match=f"more than {4 * 1024 * 1024} bytes"
            ):
                await directory.users_in_group("/big")
        finally:
            await directory.aclose()


async def test_the_resolver_reports_an_outage_as_a_resolution_failure(
    directory: KeycloakDirectory, keycloak: KeycloakServer
) -> None:
    resolver = ApproverResolver(directory, RuleEvaluator())
    assert await resolver.resolve("group", {"group": "/finance"}, {}) == ["dave"]
    keycloak.go_down("refuse")
    with pytest.raises(ResolutionFailed, match="unreachable"):
        await resolver.resolve("role", {"role": "director"}, {})
    keycloak.come_back()


# -- resolution cache ------------------------------------------------------------------------


@pytest.fixture
async def cached(
    directory: KeycloakDirectory, clock: FakeClock
) -> AsyncIterator[CachedDirectory]:
    cached = CachedDirectory(directory, 60, clock=clock)
    yield cached
    await cached.aclose()


async def test_a_rule_resolved_again_within_the_ttl_asks_keycloak_nothing(
    cached: CachedDirectory, keycloak: KeycloakServer, clock: FakeClock
) -> None:
    first = await cached.users_with_role("district_officer")
    in_group = await cached.users_in_group("/districts")
    keycloak.reset_counts()
    clock.advance(59)
    assert await cached.users_with_role("district_officer") == first
    assert await cached.users_in_group("/districts") == in_group
    assert keycloak.requests == []


async def test_a_rule_is_fetched_again_once_the_ttl_has_passed(
    cached: CachedDirectory, keycloak: KeycloakServer, clock: FakeClock
) -> None:
    assert await cached.users_in_group("/finance") == ["dave"]
    keycloak.realm.user("nina", groups=["/finance"])
    clock.advance(30)
    assert await cached.users_in_group("/finance") == ["dave"]
    clock.advance(31)
    assert await cached.users_in_group("/finance") == ["dave", "nina"]


async def test_each_rule_has_its_own_entry(
    cached: CachedDirectory, keycloak: KeycloakServer
) -> None:
    assert await cached.users_with_role("director") == DIRECTORS
    assert await cached.users_with_role("checker", "registry") == REGISTRY_CHECKERS
    assert await cached.users_with_role("checker") == []
    assert await cached.users_in_group("/finance") == ["dave"]
    assert await cached.users_in_group("/districts/D1") == ["alice", "frank"]


async def test_concurrent_misses_for_one_rule_share_one_fetch(
    cached: CachedDirectory, keycloak: KeycloakServer
) -> None:
    results = await asyncio.gather(
        *(cached.users_with_role("district_officer") for _ in range(8))
    )
    assert all(r == DISTRICT_OFFICERS for r in results)
    role_lookups = [
        r for r in keycloak.admin_requests if r.path.endswith("/roles/district_officer")
    ]
    assert len(role_lookups) == 1


async def test_a_failure_is_not_cached(
    cached: CachedDirectory, keycloak: KeycloakServer
) -> None:
    keycloak.go_down("503")
    with pytest.raises(DirectoryUnavailable):
        await cached.users_in_group("/finance")
    keycloak.come_back()
    assert await cached.users_in_group("/finance") == ["dave"]


async def test_pickers_are_not_cached(
    cached: CachedDirectory, keycloak: KeycloakServer
) -> None:
    await cached.search_users("ali")
    await cached.search_users("ali")
    assert len(paged_queries(keycloak, "/users")) == 2


async def test_a_zero_ttl_asks_every_time(
    directory: KeycloakDirectory, keycloak: KeycloakServer, clock: FakeClock
) -> None:
    uncached = CachedDirectory(directory, 0, clock=clock)
    await uncached.users_in_group("/finance")
    await uncached.users_in_group("/finance")
    assert len(paged_queries(keycloak, "/group-by-path/finance")) == 2


# -- wiring ----------------------------------------------------------------------------------


async def test_the_service_uses_keycloak_when_a_url_is_configured(
    keycloak: KeycloakServer, tmp_path: Path
) -> None:
    settings = keycloak.settings(
        directory_file=tmp_path / "ignored.yaml", directory_cache_seconds=15
    )
    directory = build_directory(settings)
    try:
        assert isinstance(directory, CachedDirectory)
        assert isinstance(directory.inner, KeycloakDirectory)
        assert directory.ttl == timedelta(seconds=15)
        assert await directory.users_with_role("director") == DIRECTORS
    finally:
        await close_directory(directory)


def test_without_a_keycloak_url_the_directory_file_is_used(tmp_path: Path) -> None:
    settings = Settings(env="testing", directory_file=tmp_path / "directory.yaml")
    assert isinstance(build_directory(settings), FileDirectory)
