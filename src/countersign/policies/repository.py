"""Every query on policies, versions, stages and rules."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from countersign.kit.pagination import Page, encode_cursor, scalars_page
from countersign.models import Policy, PolicyStage

# Published versions, by id, per process. A version's content never changes once it leaves
# `draft` (ADR 0028), so a request's pinned version and the active version of a key are read once,
# not three statements per command. Cached rows are detached from every session: read-only.
PUBLISHED_CACHE_SIZE = 1024
_published: OrderedDict[uuid.UUID, Policy] = OrderedDict()


class PolicyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def _with_stages(statement: Select[Policy]) -> Select[Policy]:
        return statement.options(
            selectinload(Policy.stages).selectinload(PolicyStage.rules)
        )

    async def get_version(self, policy_key: str, version: int) -> Policy | None:
        statement = self._with_stages(
            select(Policy).where(
                Policy.policy_key == policy_key, Policy.version == version
            )
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get_by_id(self, policy_id: uuid.UUID) -> Policy | None:
        statement = self._with_stages(select(Policy).where(Policy.id == policy_id))
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get_published(self, policy_id: uuid.UUID) -> Policy | None:
        """A version with its stages and rules, from the per-process cache when it is published.

        Only its content is to be read: `status` and `activated_at` of a cached row are those of
        when it was cached (use `get_by_id` to show a version's current status).
        """
        cached = _published.get(policy_id)
        if cached is not None:
            _published.move_to_end(policy_id)
            return cached
        policy = await self.get_by_id(policy_id)
        if policy is None or policy.status == "draft":
            return policy
        self.session.expunge(policy)  # with its stages and rules (cascade "all")
        _published[policy_id] = policy
        while len(_published) > PUBLISHED_CACHE_SIZE:
            _published.popitem(last=False)
        return policy

    async def get_active_published(self, policy_key: str) -> Policy | None:
        """The active version of `policy_key`: one indexed lookup of its id, then the cache."""
        statement = select(Policy.id).where(
            Policy.policy_key == policy_key, Policy.status == "active"
        )
        policy_id = (await self.session.execute(statement)).scalar_one_or_none()
        return None if policy_id is None else await self.get_published(policy_id)

    async def active_published_for_artifact_type(
        self, artifact_type: str
    ) -> list[Policy]:
        """The active versions routing may pick for `artifact_type`, in routing order."""
        statement = (
            select(Policy.id)
            .where(Policy.artifact_type == artifact_type, Policy.status == "active")
            .order_by(Policy.priority.desc(), Policy.policy_key)
        )
        found: list[Policy] = []
        for policy_id in (await self.session.execute(statement)).scalars().all():
            policy = await self.get_published(policy_id)
            if policy is not None:
                found.append(policy)
        return found

    async def get_active(self, policy_key: str) -> Policy | None:
        statement = self._with_stages(
            select(Policy).where(
                Policy.policy_key == policy_key, Policy.status == "active"
            )
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def latest_version_number(self, policy_key: str) -> int | None:
        statement = select(func.max(Policy.version)).where(
            Policy.policy_key == policy_key
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def list_versions(self, policy_key: str) -> Sequence[Policy]:
        statement = (
            select(Policy)
            .where(Policy.policy_key == policy_key)
            .order_by(Policy.version.desc())
        )
        return (await self.session.execute(statement)).scalars().all()

    async def list_latest(self, *, after_key: str | None, limit: int) -> Page[Policy]:
        """The newest version of each key, ordered by key (keyset-paged)."""
        newest = (
            select(Policy.policy_key, func.max(Policy.version).label("version"))
            .group_by(Policy.policy_key)
            .subquery()
        )
        statement = self._with_stages(
            select(Policy)
            .join(
                newest,
                (Policy.policy_key == newest.c.policy_key)
                & (Policy.version == newest.c.version),
            )
            .order_by(Policy.policy_key)
        )
        if after_key is not None:
            statement = statement.where(Policy.policy_key > after_key)
        return await scalars_page(
            self.session,
            statement,
            limit=limit,
            cursor_of=lambda policy: encode_cursor([policy.policy_key]),
        )

    async def list_active_for_artifact_type(
        self, artifact_type: str
    ) -> Sequence[Policy]:
        statement = self._with_stages(
            select(Policy)
            .where(Policy.artifact_type == artifact_type, Policy.status == "active")
            .order_by(Policy.priority.desc(), Policy.policy_key)
        )
        return (await self.session.execute(statement)).scalars().all()
