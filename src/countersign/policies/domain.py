"""Pure policy rules: semantic validation, version diffs, and stage planning shared with the engine.

No session, no I/O, no settings: everything here is a function of its arguments, so it is tested
exhaustively in `tests/policies/test_domain.py` without a database.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol
from urllib.parse import urlsplit

from countersign.errors import (
    CallbackNotAllowed,
    FieldProblem,
    PolicyInvalid,
    RuleUnsafe,
)
from countersign.policies.rules import RuleEvaluator
from countersign.policies.schemas import PolicyIn, StageIn

SKIP_REASON_SKIP_IF: Final = "skip_if"
SKIP_REASON_NO_APPROVERS: Final = "no_approvers_resolved"
MAX_HTTP_TIMEOUT_SECONDS: Final = 30
MAX_USER_ID_LENGTH: Final = 200

_evaluator: Final = RuleEvaluator()

UrlAllowed = Callable[[str], str | None]


# --- validation -------------------------------------------------------------------------------


class _Problems:
    """Problems sorted by the error they belong to, so one call reports all of them at once."""

    def __init__(self) -> None:
        self.unsafe: list[FieldProblem] = []
        self.url_refused: list[FieldProblem] = []
        self.invalid: list[FieldProblem] = []

    def add(self, pointer: str, detail: str) -> None:
        self.invalid.append(FieldProblem(pointer, detail))

    def check_logic(self, logic: Any, pointer: str) -> None:
        self.unsafe.extend(_evaluator.check(logic, pointer))


def validate_policy(policy: PolicyIn, *, url_allowed: UrlAllowed | None = None) -> None:
    """Check everything pydantic cannot; raise once with every problem found.

    Pointers point into the submitted body (`/stages/<index in the list>/...`, not `stage_order`).

    Which error: any unsafe JSONLogic (outside the allowlist or limits) raises `RuleUnsafe` with
    every unsafe pointer, as the contract gives it its own code. Otherwise, when the only problems
    are http-rule URLs refused by the outbound policy, `CallbackNotAllowed` (the contract's error
    table gives that code to "callback or http-rule URL not permitted"). Otherwise
    `PolicyInvalid` with every problem, refused URLs included, so nothing is hidden.

    Args:
        policy: the body of a create, add-version or patch, or a stored version being activated.
        url_allowed: the outbound policy; returns None when a URL may be called, else the reason.
            None skips the outbound check (the URL must still be an absolute http(s) URL).

    Raises:
        RuleUnsafe, CallbackNotAllowed, PolicyInvalid: see above.
    """
    problems = _Problems()
    if policy.applies_if is not None:
        problems.check_logic(policy.applies_if, "/applies_if")
    for index, stage in enumerate(policy.stages):
        _validate_stage(stage, f"/stages/{index}", problems, url_allowed)
    _validate_stage_orders(policy.stages, problems)
    _validate_parallel_groups(policy.stages, problems)

    if problems.unsafe:
        raise RuleUnsafe(
            _summary("unsafe JSONLogic rule", problems.unsafe), problems.unsafe
        )
    if problems.url_refused and not problems.invalid:
        raise CallbackNotAllowed(
            _summary("http rule URL not allowed", problems.url_refused),
            problems.url_refused,
        )
    if problems.invalid or problems.url_refused:
        everything = sorted(problems.invalid + problems.url_refused, key=_pointer_order)
        raise PolicyInvalid(_summary("problem", everything), everything)


def _summary(what: str, problems: Sequence[FieldProblem]) -> str:
    count = len(problems)
    return f"policy has {count} {what}{'' if count == 1 else 's'}"


# Field order of the body, to report problems in the order a reader meets them.
_POLICY_FIELD_RANK: Final = {
    name: rank for rank, name in enumerate(PolicyIn.model_fields)
}
_STAGE_FIELD_RANK: Final = {
    name: rank for rank, name in enumerate(StageIn.model_fields)
}


def _pointer_order(problem: FieldProblem) -> tuple[int, int, int]:
    # Sorted by (top-level field, stage index, stage field); the sort is stable, so problems of
    # one field (e.g. several rules of a stage) keep the order in which they were found.
    tokens = problem.pointer.split("/")[1:] + ["", ""]
    top = _POLICY_FIELD_RANK.get(tokens[0], len(_POLICY_FIELD_RANK))
    if tokens[0] == "stages" and tokens[1].isdigit():
        return (
            top,
            int(tokens[1]),
            _STAGE_FIELD_RANK.get(tokens[2], len(_STAGE_FIELD_RANK)),
        )
    return top, 0, 0


def _validate_stage(
    stage: StageIn, at: str, problems: _Problems, url_allowed: UrlAllowed | None
) -> None:
    if stage.stage_order < 1:
        problems.add(f"{at}/stage_order", "stage_order must be 1 or more")
    _validate_mode_value(stage, at, problems)
    if stage.skip_if is not None:
        problems.check_logic(stage.skip_if, f"{at}/skip_if")
    if stage.on_breach is not None and stage.sla_hours is None:
        problems.add(f"{at}/on_breach", "on_breach needs sla_hours")
    if stage.on_breach == "escalate" and not stage.escalation_rules:
        problems.add(
            f"{at}/escalation_rules",
            "on_breach 'escalate' needs at least one escalation rule",
        )
    for j, rule in enumerate(stage.rules):
        _validate_rule_value(
            rule.rule_type,
            rule.rule_value,
            f"{at}/rules/{j}/rule_value",
            problems,
            url_allowed,
        )
    for k, escalation in enumerate(stage.escalation_rules):
        _validate_rule_value(
            escalation.rule_type,
            escalation.rule_value,
            f"{at}/escalation_rules/{k}/rule_value",
            problems,
            url_allowed,
        )


def _validate_mode_value(stage: StageIn, at: str, problems: _Problems) -> None:
    pointer = f"{at}/mode_value"
    value = stage.mode_value
    if stage.mode == "all":
        # `all` counts every approver, so a number would be meaningless; AWE sends null here, and
        # refusing anything else catches a policy written for another mode (e.g. mode changed from
        # `any-n` but the 2 left behind) instead of silently ignoring it.
        if value is not None:
            problems.add(pointer, "mode 'all' takes no mode_value (use null)")
        return
    if stage.mode == "any-n":
        if value is not None and value < 1:
            problems.add(pointer, "mode 'any-n' needs mode_value 1 or more (default 1)")
            return
    elif stage.mode == "quorum":
        if value is None:
            problems.add(pointer, "mode 'quorum' needs mode_value")
            return
        if value < 1:
            problems.add(pointer, "mode 'quorum' needs mode_value 1 or more")
            return
    elif stage.mode == "percentage":
        if value is None:
            problems.add(pointer, "mode 'percentage' needs mode_value")
        elif not 1 <= value <= 100:
            problems.add(
                pointer, "mode 'percentage' needs mode_value between 1 and 100"
            )
        return

    # any-n / quorum: when every approver is named literally we know the most that can approve.
    # Role/group/expression/http rules resolve at request time, so no bound is known for them, and
    # a stage with no approver rule at all is legal (`on_empty` decides), so it is not checked.
    # A malformed user rule is reported on its own; counting around it would add a second,
    # derived problem for the same mistake.
    approver_rules = [rule for rule in stage.rules if rule.kind == "approver"]
    literal_ids = [rule.rule_value.get("user_id") for rule in approver_rules]
    if not approver_rules or any(rule.rule_type != "user" for rule in approver_rules):
        return
    if not all(isinstance(user_id, str) and user_id.strip() for user_id in literal_ids):
        return
    literal = set(literal_ids)
    needed = 1 if value is None else value
    if needed > len(literal):
        problems.add(
            pointer,
            f"mode '{stage.mode}' needs {needed} approvals but the stage names only "
            f"{len(literal)} approver{'' if len(literal) == 1 else 's'}",
        )


def _validate_stage_orders(stages: Sequence[StageIn], problems: _Problems) -> None:
    first_index: dict[int, int] = {}
    for index, stage in enumerate(stages):
        seen = first_index.setdefault(stage.stage_order, index)
        if seen != index:
            problems.add(
                f"/stages/{index}/stage_order",
                f"stage_order {stage.stage_order} is already used by /stages/{seen}",
            )


def _validate_parallel_groups(stages: Sequence[StageIn], problems: _Problems) -> None:
    # Stages run in stage_order, and a parallel group is "adjacent stages with the same group", so
    # a group that reappears after another stage would silently become two groups. Refuse it at
    # the stage where the group reappears. Ties in stage_order (already reported) keep list order.
    ordered = sorted(range(len(stages)), key=lambda i: (stages[i].stage_order, i))
    closed: set[int] = set()
    previous: int | None = None
    for index in ordered:
        group = stages[index].parallel_group
        if group is not None and group != previous and group in closed:
            problems.add(
                f"/stages/{index}/parallel_group",
                f"stages of parallel_group {group!r} must be adjacent in stage_order",
            )
        if previous is not None and previous != group:
            closed.add(previous)
        previous = group


def _validate_rule_value(
    rule_type: str,
    value: Mapping[str, Any],
    at: str,
    problems: _Problems,
    url_allowed: UrlAllowed | None,
) -> None:
    # Keys the contract does not define are ignored rather than refused, like unknown fields of
    # the body: AWE-written policies must load unchanged.
    if rule_type == "user":
        if (
            _require_text(value, "user_id", at, problems)
            and len(value["user_id"]) > MAX_USER_ID_LENGTH
        ):
            # A principal id longer than a task's assignee column could never hold a task.
            problems.add(
                f"{at}/user_id",
                f"user_id must be at most {MAX_USER_ID_LENGTH} characters",
            )
    elif rule_type == "role":
        _require_text(value, "role", at, problems)
        client = value.get("client")
        if client is not None and not (isinstance(client, str) and client):
            problems.add(f"{at}/client", "client must be a non-empty string when given")
    elif rule_type == "group":
        if _require_text(value, "group", at, problems) and not value[
            "group"
        ].startswith("/"):
            problems.add(f"{at}/group", "group must be a path starting with '/'")
    elif rule_type == "expression":
        if "logic" not in value:
            problems.add(f"{at}/logic", "logic is required")
        else:
            problems.check_logic(value["logic"], f"{at}/logic")
    elif rule_type == "http":
        _validate_http_rule(value, at, problems, url_allowed)


def _require_text(
    value: Mapping[str, Any], key: str, at: str, problems: _Problems
) -> bool:
    text = value.get(key)
    if isinstance(text, str) and text.strip():
        return True
    problems.add(f"{at}/{key}", f"{key} is required and must be a non-empty string")
    return False


def _validate_http_rule(
    value: Mapping[str, Any],
    at: str,
    problems: _Problems,
    url_allowed: UrlAllowed | None,
) -> None:
    url = value.get("url")
    if not isinstance(url, str) or not url:
        problems.add(f"{at}/url", "url is required and must be a non-empty string")
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.add(f"{at}/url", "url must be an absolute http(s) URL")
        elif url_allowed is not None and (reason := url_allowed(url)) is not None:
            problems.url_refused.append(FieldProblem(f"{at}/url", reason))
    if "timeout_seconds" in value:
        timeout = value["timeout_seconds"]
        # bool is an int in Python, but `true` is not a number of seconds.
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or math.isnan(timeout)
            or not 0 < timeout <= MAX_HTTP_TIMEOUT_SECONDS
        ):
            problems.add(
                f"{at}/timeout_seconds",
                f"timeout_seconds must be a number above 0 and at most {MAX_HTTP_TIMEOUT_SECONDS}",
            )


# --- diff -------------------------------------------------------------------------------------

# Fields that identify or describe a stored version rather than what it says.
_IGNORED_POLICY_FIELDS: Final = frozenset(
    {"id", "version", "status", "created_by", "created_at"}
)
_IGNORED_STAGE_FIELDS: Final = frozenset({"id"})


def diff_policies(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every differing leaf between two policy versions (JSON form, e.g. `model_dump(mode="json")`).

    Returns `{"pointer", "before", "after"}` dicts in document order. Dicts are compared key by
    key, lists index by index; a key or element present on one side only is one change with null
    on the other side. Stages are compared by position, not matched by `stage_order`: inserting a
    stage therefore shows as changes to every later stage, which is what a reader comparing the
    two bodies side by side sees, and it needs no guess about which stage "became" which.
    Bookkeeping fields (`id`, `version`, `status`, `created_by`, `created_at`, stage `id`) are
    ignored.
    """
    changes: list[dict[str, Any]] = []
    _diff(_comparable(a), _comparable(b), "", changes)
    return changes


def _comparable(policy: Mapping[str, Any]) -> dict[str, Any]:
    result = {k: v for k, v in policy.items() if k not in _IGNORED_POLICY_FIELDS}
    stages = result.get("stages")
    if isinstance(stages, list):
        result["stages"] = [
            {k: v for k, v in stage.items() if k not in _IGNORED_STAGE_FIELDS}
            if isinstance(stage, Mapping)
            else stage
            for stage in stages
        ]
    return result


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _same(before: Any, after: Any) -> bool:
    # `True == 1` and `0 == False` in Python but not in JSON; numbers compare by value (1 == 1.0).
    if isinstance(before, bool) or isinstance(after, bool):
        return type(before) is type(after) and before == after
    if isinstance(before, int | float) and isinstance(after, int | float):
        return before == after
    return type(before) is type(after) and before == after


def _diff(before: Any, after: Any, at: str, changes: list[dict[str, Any]]) -> None:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        keys = list(before) + [k for k in after if k not in before]
        for key in keys:
            _diff(before.get(key), after.get(key), f"{at}/{_escape(str(key))}", changes)
    elif isinstance(before, list) and isinstance(after, list):
        for i in range(max(len(before), len(after))):
            _diff(
                before[i] if i < len(before) else None,
                after[i] if i < len(after) else None,
                f"{at}/{i}",
                changes,
            )
    elif not _same(before, after):
        changes.append({"pointer": at, "before": before, "after": after})


# --- stage planning (simulate and the engine) -------------------------------------------------


class RuleLike(Protocol):
    """What planning reads from a rule: a `RuleIn`, or a stored rule row."""

    @property
    def kind(self) -> str: ...

    @property
    def required(self) -> bool: ...


class StageLike(Protocol):
    """What skipping reads from a stage: a `StageIn`, or a stored stage row."""

    @property
    def skip_if(self) -> Any: ...

    @property
    def on_empty(self) -> str: ...


@dataclass(frozen=True)
class StagePlan:
    """Who gets a task when a stage starts. Every tuple is in first-appearance order, no duplicates.

    `approvers` are after separation of duties; `removed_by_sod` are the ones taken out (in the
    order they were first resolved); `required_approvers` is the subset of `approvers` resolved by
    a `required: true` rule; `observers` never include an approver.
    """

    approvers: tuple[str, ...]
    observers: tuple[str, ...]
    required_approvers: tuple[str, ...]
    removed_by_sod: tuple[str, ...]


def _unique(users: Iterable[str]) -> list[str]:
    # dict keeps insertion order: de-duplicates while keeping first appearance. Empty ids are
    # dropped: an expression or http rule returning "" names nobody.
    return list(dict.fromkeys(user for user in users if user))


def plan_stage(
    stage: object,
    *,
    resolved: Sequence[tuple[RuleLike, Sequence[str]]],
    barred: Collection[str],
) -> StagePlan:
    """Union the users each rule resolved to and take out those separation of duties bars.

    Args:
        stage: the stage being planned (unused today; kept so callers need not change when
            planning starts to depend on stage settings).
        resolved: each rule of the stage with the users it resolved to, in rule order.
        barred: who may not decide this stage (`requests.domain.barred_users`).
    """
    del stage

    def forbidden(user: str) -> bool:
        return user in barred

    candidates = _unique(
        u for rule, users in resolved if rule.kind == "approver" for u in users
    )
    approvers = [u for u in candidates if not forbidden(u)]
    removed = [u for u in candidates if forbidden(u)]
    kept = set(approvers)
    required = _unique(
        u
        for rule, users in resolved
        if rule.kind == "approver" and rule.required
        for u in users
        if u in kept
    )
    # Observers only watch; an approver who is also named as observer keeps the approver task.
    # SoD does not apply to observers: their decisions never count.
    observers = _unique(
        u
        for rule, users in resolved
        if rule.kind == "observer"
        for u in users
        if u not in kept
    )
    return StagePlan(
        approvers=tuple(approvers),
        observers=tuple(observers),
        required_approvers=tuple(required),
        removed_by_sod=tuple(removed),
    )


def should_skip(
    stage: StageLike,
    data: Mapping[str, Any],
    evaluator: RuleEvaluator,
    *,
    approvers: Sequence[str] | None = None,
    pointer: str = "/skip_if",
) -> tuple[bool, str | None]:
    """Whether a starting stage is skipped, and why (`skip_if` or `no_approvers_resolved`).

    Call it before resolving (approvers=None: only `skip_if` is looked at, so a skipped stage
    costs no directory calls), then with the planned approvers to apply `on_empty: skip`.
    An empty stage with `on_empty: block` is not skipped: see `blocks_on_empty`.

    Raises:
        RuleUnsafe, RuleEvaluationError: from evaluating `skip_if`.
    """
    if stage.skip_if is not None and evaluator.is_truthy(
        evaluator.evaluate(stage.skip_if, data, pointer=pointer)
    ):
        return True, SKIP_REASON_SKIP_IF
    if approvers is not None and not approvers and stage.on_empty == "skip":
        return True, SKIP_REASON_NO_APPROVERS
    return False, None


def blocks_on_empty(stage: StageLike, approvers: Sequence[str]) -> bool:
    """An `on_empty: block` stage that resolved nobody rejects the request (`no_approvers_resolved`)."""
    return not approvers and stage.on_empty == "block"


class SimulatedStageLike(Protocol):
    @property
    def skipped(self) -> bool: ...

    @property
    def resolved_approvers(self) -> Sequence[str]: ...


def simulate_outcome(
    stages: Sequence[SimulatedStageLike],
) -> Literal["approved", "rejected", "pending"]:
    """The simulated request's outcome, as the contract defines it for `simulate`.

    `approved` when there are no stages or all are skipped; `rejected` when a stage that was not
    skipped resolved nobody (with `on_empty: skip` it would have been skipped, so it is a `block`
    stage); otherwise `pending`. A blocking stage rejects even when an earlier stage would be
    pending first, because the request can never be approved.
    """
    if all(stage.skipped for stage in stages):
        return "approved"
    if any(not stage.skipped and not stage.resolved_approvers for stage in stages):
        return "rejected"
    return "pending"
