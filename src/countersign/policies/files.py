"""`countersign policy apply -f FILE.yaml` and `countersign policy export KEY`: policies as files.

Applying is idempotent, so a policy kept in a repository can be applied on every deploy: a new key
is created, a changed body becomes a new version, an unchanged one adds nothing; the result is
activated unless asked to stay a draft. Both commands go through the same service functions (and
validation and audit) as the HTTP API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.errors import PolicyNotFound
from countersign.policies import service as policy_service
from countersign.policies.repository import PolicyRepository
from countersign.policies.schemas import PolicyIn


@dataclass(frozen=True)
class Applied:
    policy_key: str
    version: int
    status: str
    changed: bool


def parse(text: str) -> PolicyIn:
    return PolicyIn.model_validate(yaml.safe_load(text))


async def apply(
    session: AsyncSession, data: PolicyIn, *, actor: str, activate: bool
) -> Applied:
    repository = PolicyRepository(session)
    latest_version = await repository.latest_version_number(data.policy_key)
    if latest_version is None:
        policy = await policy_service.create_policy(session, data=data, actor=actor)
        changed = True
    else:
        latest = await policy_service.get_version(
            session, policy_key=data.policy_key, version=latest_version
        )
        same = policy_service.policy_body(latest) == data.model_dump(mode="json")
        if same:
            policy, changed = latest, False
        else:
            policy = await policy_service.add_version(
                session, policy_key=data.policy_key, data=data, actor=actor
            )
            changed = True
    if activate and policy.status != "active":
        policy = await policy_service.activate(
            session, policy_key=policy.policy_key, version=policy.version, actor=actor
        )
        changed = True
    return Applied(policy.policy_key, policy.version, policy.status, changed)


async def export(session: AsyncSession, *, policy_key: str, version: int | None) -> str:
    """YAML of the given version, else the active one, else the newest."""
    repository = PolicyRepository(session)
    policy = (
        await repository.get_version(policy_key, version)
        if version is not None
        else await repository.get_active(policy_key)
    )
    if policy is None and version is None:
        latest = await repository.latest_version_number(policy_key)
        policy = (
            await repository.get_version(policy_key, latest)
            if latest is not None
            else None
        )
    if policy is None:
        raise PolicyNotFound(f"policy {policy_key!r} not found")
    body: dict[str, Any] = policy_service.policy_body(policy)
    return yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
