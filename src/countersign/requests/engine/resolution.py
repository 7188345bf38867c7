"""Resolve, then lock: approvers that need an outside system are found outside the transaction.

Directory (Keycloak) and `http` rule calls can take seconds. Made inside a command they would hold
the request row lock and a pooled connection for that long, so a slow resolver would stall every
command on the request and, under load, drain the pool for everyone (DESIGN.md, ADR 0027).

So a command runs as attempts (`run`). Inside an attempt the engine resolves local rules (`user`,
`expression`, the directory file) as it goes; when a stage it starts needs a rule that calls out
and no answer for that stage is at hand, it raises `ResolutionNeeded` naming every such stage of
the group it is starting. `run` rolls the attempt back (the lock and the connection are released),
asks the outside systems with no transaction open, and runs the attempt again with the answers.
The new attempt reads the request afresh under its lock: if the request moved on meanwhile (another
decision started the stage, a resubmit opened a new cycle), the answers for stages that are no
longer pending are simply not used, and a stage that now needs resolving raises again. An answer is
keyed by request, cycle and policy stage, so it is never applied to another context.
A failure of the outside system is an answer too: the stage is left `resolving` and retried by the
worker, exactly as before.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from countersign.directory.http_rule import HttpRuleCall
from countersign.directory.resolver import ApproverResolver, ResolutionFailed
from countersign.worker.queue import discard_buffered

T = TypeVar("T")

# Attempts that may end in `ResolutionNeeded` before the last one resolves inside the transaction
# (as a request that keeps changing under a slow resolver must still make progress).
MAX_ROUNDS = 3

# The answers for one stage's rules that call out: users by the rule's index in the stage, or why
# the outside system failed. Local rules are not in it: they are evaluated inside the attempt, where
# a failing expression is the command's error (422 on create) or the stage's (rejected).
Answers = dict[int, list[str]] | ResolutionFailed
# (request id, cycle, policy stage id, "stage" | "escalation"): the same rules over the same
# context. Not the stage row's id: a create's rows are new in every attempt.
Key = tuple[uuid.UUID, int, uuid.UUID | None, str]


@dataclass(frozen=True)
class Work:
    """The rules of one stage (or of one stage's escalation) that need an outside system."""

    key: Key
    rules: Sequence[tuple[int, Any]]
    facts: dict[str, Any]
    http_call: HttpRuleCall | None


def rule_type_of(rule: Any) -> str:
    """Rules come as ORM rows (stage rules) or dicts (escalation rules)."""
    return str(rule["rule_type"] if isinstance(rule, dict) else rule.rule_type)


def rule_value_of(rule: Any) -> dict[str, Any]:
    value = rule["rule_value"] if isinstance(rule, dict) else rule.rule_value
    return dict(value)


class ResolutionNeeded(Exception):
    """Raised inside an attempt: these stages need outside answers before the command can go on."""

    def __init__(self, work: list[Work]) -> None:
        super().__init__(f"{len(work)} stage(s) need outside resolution")
        self.work = work


@dataclass
class Resolutions:
    """Answers gathered outside the transaction for one command, by (stage id, purpose)."""

    answers: dict[Key, Answers] = field(default_factory=dict)
    # The id a request created by this command gets, the same in every attempt: an http
    # resolver asked outside the transaction is told the id the request will really have.
    new_request_id: uuid.UUID = field(default_factory=uuid.uuid4)
    # Set for the last attempt: resolve outside systems in place rather than raising again.
    inline: bool = False

    def get(self, key: Key) -> Answers | None:
        return self.answers.get(key)

    async def fetch(self, work: Sequence[Work], resolver: ApproverResolver) -> None:
        """Ask the outside systems for every piece of `work` (no transaction is open)."""
        for item in work:
            self.answers[item.key] = await ask(
                resolver, item.rules, item.facts, item.http_call
            )


async def ask(
    resolver: ApproverResolver,
    rules: Sequence[tuple[int, Any]],
    facts: dict[str, Any],
    http_call: HttpRuleCall | None,
) -> Answers:
    """Resolve rules that call out; the first failure answers for the whole set."""
    answers: dict[int, list[str]] = {}
    try:
        for index, rule in rules:
            answers[index] = await resolver.resolve(
                rule_type_of(rule), rule_value_of(rule), facts, http_call=http_call
            )
    except ResolutionFailed as failure:
        return failure
    return answers


async def run(
    session: AsyncSession,
    resolver: ApproverResolver,
    attempt: Callable[[Resolutions], Awaitable[T]],
) -> T:
    """Run `attempt` until it completes without needing outside answers (see the module doc).

    `attempt` must do the whole command from its first statement (idempotency key, lock, reads):
    a rolled-back attempt leaves nothing behind, and the jobs it asked for are dropped with it.
    """
    resolutions = Resolutions()
    for _ in range(MAX_ROUNDS):
        try:
            return await attempt(resolutions)
        except ResolutionNeeded as needed:
            await session.rollback()
            discard_buffered()
            await resolutions.fetch(needed.work, resolver)
    resolutions.inline = True
    return await attempt(resolutions)
