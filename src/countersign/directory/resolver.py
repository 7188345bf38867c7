"""Turns one approver rule into user ids: the single resolver interface of the service.

`user` and `expression` rules resolve locally; `role` and `group` go to the directory adapter
(file or Keycloak). Failures of an outside system raise `ResolutionFailed` with a reason, so the
engine can leave a stage `resolving` instead of losing work.

Every id returned must be able to hold a task: at most `MAX_USER_ID_LENGTH` characters (the width
of the assignee column). An id that cannot would fail the whole command when its task is stored,
turning a request creation or a decision into a 500 and losing it. From an outside system such
an id is a resolution failure (its owner can fix the data, and the retry then succeeds); from a
local rule (a `user` id in the policy, an expression over the request's context), which a retry
cannot change, it names nobody, like every other value that is not a user id.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx

from countersign.directory import http_rule
from countersign.directory.base import Directory
from countersign.directory.http_rule import (
    MAX_USER_ID_LENGTH,
    HttpRuleCall,
    HttpRuleFailed,
)
from countersign.errors import AppError, DirectoryUnavailable
from countersign.policies.rules import RuleEvaluator

if TYPE_CHECKING:
    from countersign.webhooks.secrets import SecretBox

logger = logging.getLogger(__name__)


class ResolutionFailed(Exception):
    """An outside system could not answer; the caller decides whether to retry later."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ApproverResolver:
    def __init__(
        self,
        directory: Directory,
        evaluator: RuleEvaluator,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.directory = directory
        self.evaluator = evaluator
        # The outbound-guarded client and the secret box for http rules; wired in by the runtime
        # that owns them (`Runtime.create`).
        self.http_client = http_client
        self.secret_box: SecretBox | None = None

    def calls_out(self, rule_type: str) -> bool:
        """Whether resolving a rule of this type may wait on another system (Keycloak, an http
        resolver): such rules are resolved before the command takes its lock (engine.resolution)."""
        if rule_type in ("user", "expression"):
            return False
        if rule_type in ("role", "group"):
            return not getattr(self.directory, "is_local", False)
        return True

    async def resolve(
        self,
        rule_type: str,
        rule_value: dict[str, Any],
        data: dict[str, Any],
        *,
        http_call: HttpRuleCall | None = None,
    ) -> list[str]:
        """User ids for one rule. `http_call` (the request's details and signing secrets) is
        needed for `http` rules; without it (e.g. a simulation) they resolve to nobody."""
        if rule_type == "user":
            return _local([str(rule_value["user_id"])], rule_type)
        if rule_type == "expression":
            return _local(
                _as_user_ids(self.evaluator.evaluate(rule_value.get("logic"), data)),
                rule_type,
            )
        try:
            if rule_type == "role":
                users = await self.directory.users_with_role(
                    str(rule_value["role"]), rule_value.get("client")
                )
                return _from_directory(users, f"role {rule_value['role']!r}")
            if rule_type == "group":
                users = await self.directory.users_in_group(str(rule_value["group"]))
                return _from_directory(users, f"group {rule_value['group']!r}")
        except DirectoryUnavailable as exc:
            raise ResolutionFailed(exc.message) from exc
        if rule_type == "http":
            if http_call is None:
                return []
            if self.http_client is None:
                raise ResolutionFailed("http rules need the worker's outbound client")
            try:
                return await http_rule.call(self.http_client, rule_value, http_call)
            except HttpRuleFailed as exc:
                raise ResolutionFailed(exc.reason) from exc
        raise AppError(f"unknown rule_type {rule_type!r}")


def _local(user_ids: list[str], rule_type: str) -> list[str]:
    usable = [u for u in user_ids if len(u) <= MAX_USER_ID_LENGTH]
    if len(usable) != len(user_ids):
        logger.warning(
            "%s rule named a user id longer than %d characters; it names nobody",
            rule_type,
            MAX_USER_ID_LENGTH,
        )
    return usable


def _from_directory(user_ids: list[str], what: str) -> list[str]:
    for user_id in user_ids:
        if len(user_id) > MAX_USER_ID_LENGTH:
            raise ResolutionFailed(
                f"the directory lists a user of {what} whose id {user_id[:40]!r}... is longer "
                f"than {MAX_USER_ID_LENGTH} characters; it cannot hold a task"
            )
    return user_ids


def _as_user_ids(value: Any) -> list[str]:
    """An expression yields one user id (string) or a list of them; anything else is nobody."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []
