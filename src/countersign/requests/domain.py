"""Pure request rules: the vote tally of a stage, the stage-group flow, separation of duties
(who is barred from a stage and why), and the request status machine.

No session, no await, no settings, no clock: values in, values out. The service loads rows, turns
them into the small frozen values below (`TaskVote.from_task`, `StageState.from_stage`), asks
these functions what happens, and persists the answer. Everything here is tested exhaustively in
`tests/requests/test_domain.py` and against an independent oracle in
`tests/requests/test_domain_properties.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Final, Literal, Protocol

# --- vocabulary (the contract's strings; StrEnum members compare equal to the stored strings) ---


class StageMode(StrEnum):
    ALL = "all"
    ANY_N = "any-n"
    QUORUM = "quorum"
    PERCENTAGE = "percentage"


class TaskKind(StrEnum):
    APPROVER = "approver"
    OBSERVER = "observer"


class TaskStatus(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    EXPIRED = "expired"
    REASSIGNED = "reassigned"


class DecisionAction(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    ABSTAIN = "abstain"
    REQUEST_CHANGES = "request_changes"


class StageStatus(StrEnum):
    PENDING = "pending"
    RESOLVING = "resolving"
    ACTIVE = "active"
    APPROVED = "approved"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class RequestStatus(StrEnum):
    IN_REVIEW = "in_review"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class StageOutcome(Enum):
    """What the votes of one stage say now. PENDING is the only unsettled value."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


TaskId = str | uuid.UUID

# A task in these states still takes part in its stage. `reassigned` tasks were handed to someone
# else (the replacement is a new task), `expired` and `skipped` tasks can no longer be decided.
LIVE_TASK_STATUSES: Final = frozenset(
    {TaskStatus.OPEN, TaskStatus.CLAIMED, TaskStatus.COMPLETED}
)
UNDECIDED_TASK_STATUSES: Final = frozenset({TaskStatus.OPEN, TaskStatus.CLAIMED})

# Contract defaults for `veto: null`.
DEFAULT_VETO: Final = {
    StageMode.ALL: True,
    StageMode.ANY_N: True,
    StageMode.QUORUM: False,
    StageMode.PERCENTAGE: False,
}

REASON_STAGE_REJECTED: Final = "stage_rejected"


# --- votes and the tally -----------------------------------------------------------------------


class TaskLike(Protocol):
    """What a vote reads from a task: a stored `Task` row, or anything shaped like it."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def assignee(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def decision_action(self) -> str | None: ...

    @property
    def required(self) -> bool: ...


@dataclass(frozen=True, init=False)
class TaskVote:
    """One task of a stage as the tally sees it.

    The constructor takes the enums or their strings (a stored row's `kind`, `status` and
    `decision_action` as they are); unknown values raise ValueError. `action` is set exactly when
    `status` is `completed`; anything else is a bug upstream and raises ValueError here rather
    than being counted wrongly.
    """

    task_id: TaskId
    assignee: str
    kind: TaskKind
    status: TaskStatus
    action: DecisionAction | None
    required: bool

    def __init__(
        self,
        task_id: TaskId,
        assignee: str,
        kind: str,
        status: str,
        action: str | None = None,
        required: bool = False,
    ) -> None:
        decided = None if action is None else DecisionAction(action)
        values = {
            "task_id": task_id,
            "assignee": assignee,
            "kind": TaskKind(kind),
            "status": TaskStatus(status),
            "action": decided,
            "required": required,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)
        if (self.status is TaskStatus.COMPLETED) != (decided is not None):
            raise ValueError(
                f"task {task_id}: a completed task needs an action and only a completed "
                f"task has one (status {self.status.value!r}, action {action!r})"
            )

    @classmethod
    def from_task(cls, task: TaskLike) -> TaskVote:
        return cls(
            task_id=task.id,
            assignee=task.assignee,
            kind=task.kind,
            status=task.status,
            action=task.decision_action,
            required=task.required,
        )

    @property
    def is_live_approver(self) -> bool:
        """Counts in the tally: an approver task that is open, claimed or completed."""
        return self.kind is TaskKind.APPROVER and self.status in LIVE_TASK_STATUSES


@dataclass(frozen=True)
class Tally:
    """The contract's counts over a stage's live approver tasks, one vote per approver.

    A = `approve`, R = `reject`, B = `abstain`, O = `open` (open or claimed), T = `total`.
    A `request_changes` decision counts as an abstention: it neither approves nor rejects (the
    service takes the request out of review for it, so the stage is not evaluated further).
    """

    approve: int = 0
    reject: int = 0
    abstain: int = 0
    open: int = 0

    @property
    def total(self) -> int:
        return self.approve + self.reject + self.abstain + self.open

    @property
    def decisive(self) -> int:
        """T − B: the percentage denominator (open tasks included: they may still approve)."""
        return self.total - self.abstain

    def as_counts(self) -> dict[str, int]:
        """The `counts` object of a stage in RequestOut."""
        return {
            "approve": self.approve,
            "reject": self.reject,
            "abstain": self.abstain,
            "open": self.open,
        }


def _counted_decisions(
    votes: Sequence[TaskVote],
) -> tuple[set[str], list[tuple[str, DecisionAction]]]:
    """The approvers with a live task, and the decision that counts for each, in decision order.

    An approver with several live tasks in one stage (named by two rules is de-duplicated at
    planning, but a reassignment or escalation can hand someone a second task) counts once: their
    first decided task in `votes` order wins, later decisions of theirs are ignored, and their
    extra open tasks add nothing while they are undecided.
    """
    live = [vote for vote in votes if vote.is_live_approver]
    assignees = {vote.assignee for vote in live}
    decided: dict[str, DecisionAction] = {}
    for vote in live:
        if vote.action is not None and vote.assignee not in decided:
            decided[vote.assignee] = vote.action
    return assignees, list(decided.items())


def tally(votes: Sequence[TaskVote]) -> Tally:
    """The counts A, R, B, O over live approver tasks, one vote per approver (see `TaskVote`)."""
    assignees, decisions = _counted_decisions(votes)
    state = _Replay(open=len(assignees))
    for _, action in decisions:
        state.record(action)
    return state.tally()


# --- evaluating a stage ------------------------------------------------------------------------


def stage_counts(tasks: Iterable[TaskLike]) -> dict[str, int]:
    """approve / reject / abstain / open over a stage's approver tasks (observers excluded): the
    `counts` of RequestOut and of the `stage_completed` event. `open` is undecided tasks; tasks
    that were reassigned, expired or skipped count nowhere."""
    counts = {"approve": 0, "reject": 0, "abstain": 0, "open": 0}
    for task in tasks:
        if task.kind != TaskKind.APPROVER:
            continue
        if task.status in UNDECIDED_TASK_STATUSES:
            counts["open"] += 1
        elif task.status == TaskStatus.COMPLETED and task.decision_action in counts:
            counts[str(task.decision_action)] += 1
    return counts


@dataclass
class _Replay:
    """Mutable counters while decisions are replayed in order (never leaves this module)."""

    approve: int = 0
    reject: int = 0
    abstain: int = 0
    open: int = 0
    required_open: int = 0
    required_blocked: int = 0

    def record(self, action: DecisionAction, *, required: bool = False) -> None:
        self.open -= 1
        if action is DecisionAction.APPROVE:
            self.approve += 1
        elif action is DecisionAction.REJECT:
            self.reject += 1
        else:
            self.abstain += 1
        if required:
            self.required_open -= 1
            if action is not DecisionAction.APPROVE:
                self.required_blocked += 1

    def tally(self) -> Tally:
        return Tally(self.approve, self.reject, self.abstain, self.open)


@dataclass(frozen=True)
class _Rule:
    mode: StageMode
    needed: int  # N for any-n and quorum, P for percentage, unused for all
    veto: bool


def _rule(mode: str, mode_value: int | None, veto: bool | None) -> _Rule:
    stage_mode = StageMode(mode)
    if stage_mode is StageMode.ALL:
        if mode_value is not None:
            raise ValueError("mode 'all' takes no mode_value")
        needed = 0
    elif stage_mode is StageMode.ANY_N:
        needed = 1 if mode_value is None else mode_value
        if needed < 1:
            raise ValueError("mode 'any-n' needs mode_value 1 or more")
    elif stage_mode is StageMode.QUORUM:
        if mode_value is None or mode_value < 1:
            raise ValueError("mode 'quorum' needs mode_value 1 or more")
        needed = mode_value
    else:
        if mode_value is None or not 1 <= mode_value <= 100:
            raise ValueError("mode 'percentage' needs mode_value between 1 and 100")
        needed = mode_value
    return _Rule(stage_mode, needed, DEFAULT_VETO[stage_mode] if veto is None else veto)


def _percent_of(percent: int, count: int) -> int:
    """ceil(percent/100 × count) in exact integer arithmetic (count ≥ 0, 1 ≤ percent ≤ 100)."""
    return (percent * count + 99) // 100


def _mode_says(rule: _Rule, t: Tally) -> tuple[bool, bool]:
    """(the mode's approval condition holds, the mode's rejection condition holds)."""
    a, r, o = t.approve, t.reject, t.open
    vetoed = rule.veto and r >= 1
    if rule.mode is StageMode.ALL:
        approved = o == 0 and r == 0 and a >= 1
        if rule.veto:
            return approved, r >= 1 or (o == 0 and a == 0)
        # Without veto a rejection does not end the stage at once: everyone gets to decide, then
        # the stage is rejected unless it is unanimous among those who did not abstain.
        return approved, o == 0 and (a == 0 or r >= 1)
    if rule.mode in (StageMode.ANY_N, StageMode.QUORUM):
        return a >= rule.needed, vetoed or a + o < rule.needed
    # percentage. Approval needs D = T − B ≥ 1 and A ≥ ceil(P/100 × D).
    #
    # "The threshold can no longer be reached", exactly: the open votes end up as a approvals,
    # r rejections and b abstentions (a + r + b = O). Approval then needs
    #     100 (A + a) ≥ P (A + a + R + r)   and   A + a + R + r ≥ 1.
    # r only grows the right-hand side, so the best case has r = 0. With r = 0 the condition is
    # (100 − P)(A + a) ≥ P·R, whose left side never decreases as a grows (P ≤ 100), so a = O is
    # the best case too; and a = O also makes A + a + R as large as possible for the D ≥ 1 part.
    # So approval is reachable iff "every open vote approves" reaches it. Any intermediate state
    # on the way is some such assignment with b counted as still open, which only raises D, so
    # it cannot approve where the final assignments cannot.
    decisive = a + r + o
    approved = decisive >= 1 and a >= _percent_of(rule.needed, decisive)
    best_approvals, best_decisive = a + o, a + o + r
    unreachable = best_decisive == 0 or best_approvals < _percent_of(
        rule.needed, best_decisive
    )
    return approved, vetoed or unreachable


def _settle(rule: _Rule, state: _Replay) -> StageOutcome:
    approved, rejected = _mode_says(rule, state.tally())
    if approved and state.required_open == 0 and state.required_blocked == 0:
        return StageOutcome.APPROVED
    if rejected or state.required_blocked > 0:
        return StageOutcome.REJECTED
    return StageOutcome.PENDING


def required_set(
    votes: Sequence[TaskVote], required_approvers: Iterable[str]
) -> frozenset[str]:
    """Who must approve: `required_approvers` plus assignees of approver tasks marked `required`.

    The requirement follows a reassigned task: an approver whose approver tasks were all
    reassigned (none of theirs is live) is no longer required; their replacement is, when the
    service copies `required` onto the new task. An expired or skipped task hands nothing over.
    """
    approvers = [vote for vote in votes if vote.kind is TaskKind.APPROVER]
    named = set(required_approvers) | {
        vote.assignee for vote in approvers if vote.required
    }
    live = {vote.assignee for vote in approvers if vote.is_live_approver}
    handed_over = {
        vote.assignee
        for vote in approvers
        if vote.status is TaskStatus.REASSIGNED and vote.assignee not in live
    }
    return frozenset(named - handed_over)


def evaluate_stage(
    mode: str,
    mode_value: int | None,
    veto: bool | None,
    votes: Sequence[TaskVote],
    required_approvers: Collection[str] = (),
) -> StageOutcome:
    """Whether a stage is approved, rejected or still pending, by the contract's decision table.

    Counts are over live approver tasks only (open, claimed or completed; observers never count;
    an approver counts once, see `tally`): A approvals, R rejections, B abstentions (and
    `request_changes`), O open or claimed, T = A + R + B + O, D = T − B.

    | mode | APPROVED when | REJECTED when |
    |---|---|---|
    | all, veto | O = 0, R = 0, A ≥ 1 | R ≥ 1, or O = 0 and A = 0 |
    | all, no veto | O = 0, R = 0, A ≥ 1 | O = 0 and (A = 0 or R ≥ 1) |
    | any-n (N, default 1) | A ≥ N | A + O < N, or veto and R ≥ 1 |
    | quorum (N) | A ≥ N | A + O < N, or veto and R ≥ 1 |
    | percentage (P) | D ≥ 1 and A ≥ ceil(P/100 × D) | unreachable, or veto and R ≥ 1 |

    `veto` None takes the contract default (true for all and any-n, false for quorum and
    percentage); True or False overrides it. `all` without veto waits for every approver and then
    rejects unless nobody rejected and someone approved: "unanimous among those who did not
    abstain", with rejections no longer ending the stage early. Percentage "unreachable" means no
    way of deciding the open votes approves; that is exactly the case when even all open votes
    approving would not (argued in `_mode_says`), so it is A + O + R = 0 (everyone abstained) or
    A + O < ceil(P/100 × (A + O + R)). A stage with no live approver task rejects in every mode
    (nothing can approve it), so nothing waits forever.

    Required approvers (`required_set`): APPROVED also needs every required approver's counted
    vote to be an approval. A required approver who rejected, abstained or requested changes, or
    who has no live approver task (never had one, or it expired or was skipped) can never
    approve, so the stage is REJECTED as soon as that happens, in every mode (for `all` without
    veto too: a required approver's rejection is a veto by nature). A reassigned task is not a
    lost one: the requirement moves to the replacement task (see `required_set`).

    Settled outcomes stand: the decided votes are replayed in `votes` order (list them in the
    order they were decided, e.g. by `completed_at`) and the first settled outcome is returned.
    So adding decisions to a settled stage never flips it, even when both conditions would hold
    for the final set (any-n with veto: one approval, then a rejection). Only decisions matter to
    the order; a vote set the service really evaluates (the stage was pending before its last
    decision) gets the same answer in every order. Taking open tasks out (expiry, skipping) never
    unsettles a stage either. Giving someone a new live task can: an escalation adds open votes,
    and a reassignment may hand a task to a required approver whose own task had expired. The
    service only reassigns or escalates on active stages and stops evaluating a stage once it has
    settled, so this never happens in practice.

    Raises:
        ValueError: an unknown mode, or a mode_value the policy validation would have refused.
    """
    rule = _rule(mode, mode_value, veto)
    assignees, decisions = _counted_decisions(votes)
    required = required_set(votes, required_approvers)
    state = _Replay(
        open=len(assignees),
        required_open=len(required & assignees),
        required_blocked=len(required - assignees),
    )
    outcome = _settle(rule, state)
    for assignee, action in decisions:
        if outcome is not StageOutcome.PENDING:
            break
        state.record(action, required=assignee in required)
        outcome = _settle(rule, state)
    return outcome


# --- stage-group flow --------------------------------------------------------------------------


class StageLike(Protocol):
    """What the flow reads from a stage: a stored `RequestStage` row, or anything shaped like it."""

    @property
    def stage_order(self) -> int: ...

    @property
    def parallel_group(self) -> int | None: ...

    @property
    def status(self) -> str: ...


@dataclass(frozen=True, init=False)
class StageState:
    """One stage of the request's current cycle; `status` may be given as the stored string."""

    stage_order: int
    parallel_group: int | None
    status: StageStatus

    def __init__(
        self, stage_order: int, parallel_group: int | None, status: str
    ) -> None:
        object.__setattr__(self, "stage_order", stage_order)
        object.__setattr__(self, "parallel_group", parallel_group)
        object.__setattr__(self, "status", StageStatus(status))

    @classmethod
    def from_stage(cls, stage: StageLike) -> StageState:
        return cls(stage.stage_order, stage.parallel_group, stage.status)


@dataclass(frozen=True)
class StartGroup:
    """Start these stages (stage_order, ascending): one parallel group, or a single stage."""

    stage_orders: tuple[int, ...]


@dataclass(frozen=True)
class Wait:
    """A started group is still deciding (or resolving approvers); nothing to do."""


@dataclass(frozen=True)
class Finish:
    """The request is decided. `reason` is None for approval, `stage_rejected` for a rejection
    (the service may record a more specific one it knows, e.g. `no_approvers_resolved`)."""

    outcome: Literal["approved", "rejected"]
    reason: str | None = None


Step = StartGroup | Wait | Finish

_DONE: Final = frozenset({StageStatus.APPROVED, StageStatus.SKIPPED})
_RUNNING: Final = frozenset({StageStatus.ACTIVE, StageStatus.RESOLVING})


def _groups(stages: Sequence[StageState]) -> list[list[StageState]]:
    """Stages in stage_order, cut into groups: adjacent stages with the same non-null
    parallel_group run together; a null group, or a group name that comes back after another
    stage, starts a new group (policy validation refuses the latter; here it is simply apart)."""
    ordered = sorted(stages, key=lambda stage: stage.stage_order)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if before.stage_order == after.stage_order:
            raise ValueError(f"stage_order {after.stage_order} appears twice")
    groups: list[list[StageState]] = []
    for stage in ordered:
        previous = groups[-1][-1] if groups else None
        if (
            previous is not None
            and stage.parallel_group is not None
            and stage.parallel_group == previous.parallel_group
        ):
            groups[-1].append(stage)
        else:
            groups.append([stage])
    return groups


def group_of(stages: Sequence[StageState], stage_order: int) -> tuple[int, ...]:
    """The stage_orders of the group `stage_order` belongs to, ascending.

    Raises:
        ValueError: no stage has that stage_order, or two stages share one.
    """
    for group in _groups(stages):
        orders = tuple(stage.stage_order for stage in group)
        if stage_order in orders:
            return orders
    raise ValueError(f"no stage with stage_order {stage_order}")


def next_step(stages: Sequence[StageState]) -> Step:
    """What the request does next, given the status of every stage of its current cycle.

    Any rejected stage finishes the request rejected (a group rejects as soon as one of its
    stages does). Otherwise groups are walked in stage_order: the first group that is not all
    approved/skipped either has pending stages, which are started (a group is started together;
    should some of its stages already run, the pending rest are started too rather than left
    waiting), or it is running, so we wait. When every stage is approved or skipped, or there are
    none, the request is approved.

    Raises:
        ValueError: a cancelled stage (the request is no longer in review, so there is no next
            step), or two stages with the same stage_order.
    """
    if any(stage.status is StageStatus.CANCELLED for stage in stages):
        raise ValueError("a cancelled stage: the request is no longer in review")
    groups = _groups(stages)
    if any(stage.status is StageStatus.REJECTED for stage in stages):
        return Finish("rejected", REASON_STAGE_REJECTED)
    for group in groups:
        pending = tuple(
            stage.stage_order for stage in group if stage.status is StageStatus.PENDING
        )
        if pending:
            return StartGroup(pending)
        if any(stage.status in _RUNNING for stage in group):
            return Wait()
    return Finish("approved")


# --- separation of duties ----------------------------------------------------------------------


class SodReason(StrEnum):
    """Why separation of duties bars someone from deciding a stage (the contract's strings)."""

    REQUESTER = "requester"
    CREATOR = "creator"
    EARLIER_APPROVER = "earlier_approver"
    DELEGATE_OF_REQUESTER = "delegate_of_requester"
    DELEGATE_OF_CREATOR = "delegate_of_creator"
    DELEGATE_OF_EARLIER_APPROVER = "delegate_of_earlier_approver"


_DELEGATE_REASON: Final = {
    SodReason.REQUESTER: SodReason.DELEGATE_OF_REQUESTER,
    SodReason.CREATOR: SodReason.DELEGATE_OF_CREATOR,
    SodReason.EARLIER_APPROVER: SodReason.DELEGATE_OF_EARLIER_APPROVER,
}


@dataclass(frozen=True)
class SodFacts:
    """Everything separation of duties needs about one stage of one request, loaded once
    (`engine.load_sod_facts`) and handed to `barred_users`.

    `creator` is the principal that created the request (`source_service`), which is not the
    requester when a user creates "for" someone else. `earlier_approvers` are the people who
    approved an earlier stage of this cycle (and those they approved for). `delegates` maps a
    person to everyone currently standing in for them through an active delegation window.
    """

    requester: str
    creator: str | None
    forbid_self_approval: bool
    forbid_repeat_approvers: bool
    earlier_approvers: frozenset[str] = frozenset()
    delegates: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def subjects(self) -> list[tuple[str, SodReason]]:
        """The people the flags name directly, strongest reason first."""
        named: list[tuple[str, SodReason]] = []
        if self.forbid_self_approval:
            named.append((self.requester, SodReason.REQUESTER))
            if self.creator:
                named.append((self.creator, SodReason.CREATOR))
        if self.forbid_repeat_approvers:
            named.extend(
                (person, SodReason.EARLIER_APPROVER)
                for person in sorted(self.earlier_approvers)
            )
        return named


@dataclass(frozen=True)
class Barred:
    """One person separation of duties keeps out of a stage: `reason`, and `subject`, the person
    whose role bars them (themselves, or the one they stand in for)."""

    user_id: str
    reason: SodReason
    subject: str

    @property
    def detail(self) -> str:
        """A sentence for people: the simulate trace and the 403 of a refused decision."""
        if self.reason is SodReason.REQUESTER:
            return f"{self.user_id} is the requester"
        if self.reason is SodReason.CREATOR:
            return f"{self.user_id} created the request"
        if self.reason is SodReason.EARLIER_APPROVER:
            return f"{self.user_id} approved an earlier stage"
        role = {
            SodReason.DELEGATE_OF_REQUESTER: "the requester",
            SodReason.DELEGATE_OF_CREATOR: "the creator of the request",
            SodReason.DELEGATE_OF_EARLIER_APPROVER: "an earlier stage's approver",
        }[self.reason]
        return (
            f"{self.user_id} stands in for {self.subject}, {role}, through a delegation"
        )


def barred_users(facts: SodFacts) -> dict[str, Barred]:
    """Who separation of duties bars from deciding this stage, and why: the one answer.

    `forbid_self_approval` bars the requester and the creator; `forbid_repeat_approvers` bars
    whoever approved an earlier stage; either way, anyone currently standing in for a barred
    person through a delegation is barred too (a delegate acts *as* that person). One entry per
    person, with the strongest reason: being the person outranks standing in for them, and
    requester > creator > earlier approver. Used at stage start, escalation, reassignment,
    decision and simulate, so "where is SoD enforced" has one answer.
    """
    result: dict[str, Barred] = {}
    subjects = facts.subjects()
    for person, reason in subjects:
        result.setdefault(person, Barred(person, reason, person))
    for person, reason in subjects:
        for delegate in sorted(facts.delegates.get(person, ())):
            result.setdefault(
                delegate, Barred(delegate, _DELEGATE_REASON[reason], person)
            )
    return result


def decision_bar(
    facts: SodFacts, *, actor: str, on_behalf_of: str | None = None
) -> Barred | None:
    """Why `actor` (acting for `on_behalf_of`, when a delegate) may not decide, or None.

    Either of the two being barred is enough: a delegate deciding for the requester decides as
    the requester, and the requester deciding as someone's delegate is still the requester.
    """
    barred = barred_users(facts)
    for person in (actor, on_behalf_of):
        if person is not None and person in barred:
            return barred[person]
    return None


def apply_delegation(
    person: str,
    delegates: Mapping[str, str],
    barred: Collection[str],
    approvers: Collection[str],
) -> tuple[str, str | None]:
    """Route a new task to the person's active delegate, unless that would open an SoD hole.

    No chains: the delegate's own delegation is not followed. A delegate that separation of duties
    bars from this stage (`domain.barred_users`) or who is already an approver of this stage leaves
    the task with the original person: handed to them, it could never be decided (the decision
    would be refused) and the stage would hang.
    """
    delegate = delegates.get(person)
    if delegate is None or delegate == person:
        return person, None
    if delegate in barred or delegate in approvers:
        return person, None
    return delegate, person


# --- request status machine --------------------------------------------------------------------

TERMINAL: Final = frozenset(
    {
        RequestStatus.APPROVED,
        RequestStatus.REJECTED,
        RequestStatus.CANCELLED,
        RequestStatus.EXPIRED,
    }
)


def is_terminal(status: str) -> bool:
    return RequestStatus(status) in TERMINAL


def can_decide(status: str) -> bool:
    """Tasks are decided only while the request is in review."""
    return RequestStatus(status) is RequestStatus.IN_REVIEW


def can_cancel(status: str) -> bool:
    """Any request that is not terminal can be cancelled (in review or changes requested)."""
    return not is_terminal(status)


def can_resubmit(status: str) -> bool:
    """Only a request sent back with `request_changes` is resubmitted."""
    return RequestStatus(status) is RequestStatus.CHANGES_REQUESTED
