"""The pure request rules, as tables: stage tally, stage flow, separation of duties, statuses.

Votes are written compactly, one token per task, in the order the tasks were decided:
`a+` a approved, `a-` rejected, `a0` abstained, `a*` requested changes, `a?` open, `a~` claimed,
`a.reassigned` / `a.expired` / `a.skipped` a task that no longer takes part; a `!` suffix marks
the task `required`, and an `obs:` prefix makes it an observer task (`obs:o-`, `obs:o?`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from countersign.requests.domain import (
    REASON_STAGE_REJECTED,
    TERMINAL,
    Barred,
    DecisionAction,
    Finish,
    RequestStatus,
    SodFacts,
    SodReason,
    StageOutcome,
    StageState,
    StageStatus,
    StartGroup,
    Step,
    Tally,
    TaskKind,
    TaskStatus,
    TaskVote,
    Wait,
    barred_users,
    can_cancel,
    can_decide,
    can_resubmit,
    decision_bar,
    evaluate_stage,
    group_of,
    is_terminal,
    next_step,
    required_set,
    tally,
)

APPROVED = StageOutcome.APPROVED
REJECTED = StageOutcome.REJECTED
PENDING = StageOutcome.PENDING

_DECIDED = {"+": "approve", "-": "reject", "0": "abstain", "*": "request_changes"}
_UNDECIDED = {"?": "open", "~": "claimed"}


def votes(spec: str) -> list[TaskVote]:
    """Parse the notation of the module docstring."""
    result: list[TaskVote] = []
    for number, token in enumerate(spec.split(), start=1):
        kind = "approver"
        if token.startswith("obs:"):
            kind, token = "observer", token.removeprefix("obs:")
        required = token.endswith("!")
        token = token.removesuffix("!")
        if "." in token:
            who, status = token.split(".")
            action = None
        elif token[-1] in _DECIDED:
            who, status, action = token[:-1], "completed", _DECIDED[token[-1]]
        else:
            who, status, action = token[:-1], _UNDECIDED[token[-1]], None
        result.append(TaskVote(f"t{number}", who, kind, status, action, required))
    return result


def case(name: str, *values: Any) -> Any:
    return pytest.param(*values, id=name)


# --- evaluate_stage -----------------------------------------------------------------------------

# Every mode at its threshold and beyond.
DECISION_TABLE = [
    # all, veto by default
    case("all: everyone approves", "all", None, None, "a+ b+", APPROVED),
    case("all: one still open", "all", None, None, "a+ b?", PENDING),
    case("all: claimed is still open", "all", None, None, "a+ b~", PENDING),
    case("all: a rejection vetoes at once", "all", None, None, "a- b?", REJECTED),
    case("all: approve + abstain settles", "all", None, None, "a+ b0", APPROVED),
    case("all: abstain + open waits", "all", None, None, "a0 b?", PENDING),
    case("all: everyone abstained", "all", None, None, "a0 b0", REJECTED),
    case("all: veto True is the default", "all", None, True, "a- b?", REJECTED),
    # all without veto: everyone decides, then unanimity among those who did not abstain
    case("all no veto: a reject waits", "all", None, False, "a- b?", PENDING),
    case("all no veto: then rejects", "all", None, False, "a- b+", REJECTED),
    case("all no veto: approve + abstain", "all", None, False, "a+ b0", APPROVED),
    case("all no veto: everyone abstained", "all", None, False, "a0 b0", REJECTED),
    # any-n, N = 1 (the default)
    case("any-n default N=1", "any-n", None, None, "a+ b?", APPROVED),
    case("any-n 1: one approval", "any-n", 1, None, "a? b+", APPROVED),
    case("any-n 1: nobody yet", "any-n", 1, None, "a? b?", PENDING),
    case("any-n 1: veto by default", "any-n", 1, None, "a- b?", REJECTED),
    case("any-n 1 no veto: a reject waits", "any-n", 1, False, "a- b?", PENDING),
    case("any-n 1 no veto: approved after", "any-n", 1, False, "a- b+", APPROVED),
    case("any-n 1 no veto: nobody left", "any-n", 1, False, "a- b0", REJECTED),
    # any-n, N = 2
    case("any-n 2: below", "any-n", 2, None, "a+ b? c?", PENDING),
    case("any-n 2: at threshold", "any-n", 2, None, "a+ b+ c?", APPROVED),
    case("any-n 2: beyond", "any-n", 2, None, "a+ b+ c+", APPROVED),
    case("any-n 2: too few left", "any-n", 2, None, "a0 b0 c?", REJECTED),
    case("any-n 2: more than approvers", "any-n", 2, None, "a?", REJECTED),
    # quorum 2 of 3: rejections do not veto
    case("quorum 2/3: no veto", "quorum", 2, None, "a- b+ c?", PENDING),
    case("quorum 2/3: at quorum", "quorum", 2, None, "a- b+ c+", APPROVED),
    case("quorum 2/3: beyond", "quorum", 2, None, "a+ b+ c+", APPROVED),
    case("quorum 2/3: unreachable", "quorum", 2, None, "a- b- c?", REJECTED),
    case("quorum 2/3: reject + abstain", "quorum", 2, None, "a- b0 c?", REJECTED),
    case("quorum 2/3 veto True", "quorum", 2, True, "a- b+ c?", REJECTED),
    case("quorum 2/3 veto False", "quorum", 2, False, "a- b+ c?", PENDING),
    # percentage: abstentions leave the denominator D = T - B
    case("50%: 2 of 4", "percentage", 50, None, "a+ b+ c? d?", APPROVED),
    case("50%: 1 of 4", "percentage", 50, None, "a+ b? c? d?", PENDING),
    case(
        "50%: 1 of 2 after 2 abstain", "percentage", 50, None, "a0 b0 c+ d?", APPROVED
    ),
    case("50%: +1 -1, 2 abstain", "percentage", 50, None, "a+ b- c0 d0", APPROVED),
    case("50%: unreachable", "percentage", 50, None, "a- b- c- d?", REJECTED),
    case("50%: everyone abstained", "percentage", 50, None, "a0 b0", REJECTED),
    case("67%: 2 of 3 is not enough", "percentage", 67, None, "a+ b+ c?", PENDING),
    case("67%: 2 of 3 and a reject", "percentage", 67, None, "a+ b+ c-", REJECTED),
    case("67%: 2 of 2 after abstain", "percentage", 67, None, "a+ b+ c0", APPROVED),
    case("67%: 3 of 3", "percentage", 67, None, "a+ b+ c+", APPROVED),
    case("100%: 2 of 2 after abstain", "percentage", 100, None, "a+ b0 c+", APPROVED),
    case("100%: one reject", "percentage", 100, None, "a+ b- c?", REJECTED),
    case("100%: one still open", "percentage", 100, None, "a+ b?", PENDING),
    case("50%: no veto by default", "percentage", 50, None, "a- b? c? d?", PENDING),
    case("50% veto True", "percentage", 50, True, "a- b? c? d?", REJECTED),
    case("50%: changes requested", "percentage", 50, None, "a* b+", APPROVED),
    # nothing to count: every mode settles, nothing waits forever
    case("all: nobody", "all", None, None, "", REJECTED),
    case("any-n: nobody", "any-n", None, None, "", REJECTED),
    case("quorum: nobody", "quorum", 1, None, "", REJECTED),
    case("percentage: nobody", "percentage", 50, None, "", REJECTED),
]

OBSERVERS = [
    case("observer reject is no veto", "any-n", 1, "obs:o- a?", PENDING),
    case("observer reject in all", "all", None, "obs:o- a+", APPROVED),
    case("observer approval not counted", "any-n", 1, "obs:o+ a?", PENDING),
    case("open observer does not block", "all", None, "a+ obs:o?", APPROVED),
    case("observers alone are nobody", "all", None, "obs:o0 obs:p+", REJECTED),
    case("not in the denominator", "percentage", 100, "a+ obs:o-", APPROVED),
    case("approver's observer task", "any-n", 1, "obs:a+ a? b?", PENDING),
]

NOT_LIVE = [
    # The predecessor's `all` hang: a reassigned task must not be waited for.
    case("reassigned, new task open", "all", None, "a+ b.reassigned c?", PENDING),
    case("reassigned, new approved", "all", None, "a+ b.reassigned c+", APPROVED),
    case("expired not waited for", "all", None, "a+ b.expired", APPROVED),
    case("skipped not waited for", "all", None, "a+ b.skipped", APPROVED),
    case("nobody live", "all", None, "a.expired b.skipped", REJECTED),
    case("any-n counts live only", "any-n", 2, "a+ b.reassigned", REJECTED),
    case("expired not in denominator", "percentage", 100, "a+ b.expired", APPROVED),
]

ESCALATION = [
    # Escalation adds tasks while the original approvers can still act.
    case("all waits for escalated", "all", None, "a+ b+ esc?", PENDING),
    case("all, escalated approves", "all", None, "a+ b+ esc+", APPROVED),
    case("all, escalated abstains", "all", None, "a+ b0 esc0", APPROVED),
    case("any-n reachable again", "any-n", 2, "a+ esc?", PENDING),
    case("escalated approval counts", "any-n", 2, "a+ esc+", APPROVED),
    case("quorum with escalation", "quorum", 2, "a- b+ esc+", APPROVED),
]

COUNTS_ONCE = [
    case("two approvals, one person", "any-n", 2, "a+ a+ b?", PENDING),
    case("approval + open duplicate", "any-n", 2, "a+ a? b?", PENDING),
    case("first decision wins", "all", None, "a+ a-", APPROVED),
    case("first decision wins (reject)", "all", None, "a- a+", REJECTED),
    case("open duplicate of decided", "all", None, "a+ a?", APPROVED),
    case("percentage counts b once", "percentage", 50, "a- b+ b+", APPROVED),
    case("1 of 2 is below 67%", "percentage", 67, "a- b+ b+", REJECTED),
]

REQUIRED = [
    case("still open", "any-n", 1, None, "a+ boss?", ["boss"], PENDING),
    case("approved", "any-n", 1, None, "boss+ a?", ["boss"], APPROVED),
    case("approved last", "any-n", 1, None, "a+ boss+", ["boss"], APPROVED),
    case("approved, mode not yet", "quorum", 2, None, "boss+ a? b?", ["boss"], PENDING),
    case("rejects, quorum", "quorum", 1, None, "a+ boss-", ["boss"], REJECTED),
    case("reject, no veto", "any-n", 1, False, "boss- a?", ["boss"], REJECTED),
    case("all no veto: at once", "all", None, False, "boss- a?", ["boss"], REJECTED),
    case("abstains", "percentage", 50, None, "boss0 a+", ["boss"], REJECTED),
    case("task expired", "any-n", 1, None, "a+ boss.expired", ["boss"], REJECTED),
    case("has no task", "any-n", 1, None, "a+", ["boss"], REJECTED),
    case("observer only", "any-n", 1, None, "a+ obs:boss+", ["boss"], REJECTED),
    case("by task flag", "any-n", 1, None, "a+ boss?!", [], PENDING),
    case("by task flag, approved", "any-n", 1, None, "a+ boss+!", [], APPROVED),
    case(
        "follows reassignment", "any-n", 1, None, "a+ b.reassigned! c?!", ["b"], PENDING
    ),
    case("deputy approves", "any-n", 1, None, "a+ b.reassigned! c+!", ["b"], APPROVED),
    case("deputy rejects", "any-n", 1, None, "a+ b.reassigned c-!", ["b"], REJECTED),
    case("first decision counts", "any-n", 1, None, "boss+ boss-", ["boss"], APPROVED),
    case("two required approve", "all", None, None, "b+ x+", ["b", "x"], APPROVED),
]


class TestEvaluateStage:
    @pytest.mark.parametrize(
        ("mode", "mode_value", "veto", "spec", "expected"), DECISION_TABLE
    )
    def test_decision_table(
        self,
        mode: str,
        mode_value: int | None,
        veto: bool | None,
        spec: str,
        expected: StageOutcome,
    ) -> None:
        assert evaluate_stage(mode, mode_value, veto, votes(spec), ()) is expected

    @pytest.mark.parametrize(("mode", "mode_value", "spec", "expected"), OBSERVERS)
    def test_observers_never_count(
        self, mode: str, mode_value: int | None, spec: str, expected: StageOutcome
    ) -> None:
        assert evaluate_stage(mode, mode_value, None, votes(spec)) is expected

    @pytest.mark.parametrize(("mode", "mode_value", "spec", "expected"), NOT_LIVE)
    def test_reassigned_expired_and_skipped_tasks_do_not_count(
        self, mode: str, mode_value: int | None, spec: str, expected: StageOutcome
    ) -> None:
        assert evaluate_stage(mode, mode_value, None, votes(spec)) is expected

    @pytest.mark.parametrize(("mode", "mode_value", "spec", "expected"), ESCALATION)
    def test_escalation_adds_tasks(
        self, mode: str, mode_value: int | None, spec: str, expected: StageOutcome
    ) -> None:
        assert evaluate_stage(mode, mode_value, None, votes(spec)) is expected

    @pytest.mark.parametrize(("mode", "mode_value", "spec", "expected"), COUNTS_ONCE)
    def test_an_approver_counts_once(
        self, mode: str, mode_value: int | None, spec: str, expected: StageOutcome
    ) -> None:
        assert evaluate_stage(mode, mode_value, None, votes(spec)) is expected

    @pytest.mark.parametrize(
        ("mode", "mode_value", "veto", "spec", "required", "expected"), REQUIRED
    )
    def test_required_approvers(
        self,
        mode: str,
        mode_value: int | None,
        veto: bool | None,
        spec: str,
        required: list[str],
        expected: StageOutcome,
    ) -> None:
        assert evaluate_stage(mode, mode_value, veto, votes(spec), required) is expected

    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            case("approved first", "a+ b- c?", APPROVED),
            case("vetoed first", "b- a+ c?", REJECTED),
        ],
    )
    def test_first_settled_outcome_stands(
        self, spec: str, expected: StageOutcome
    ) -> None:
        # any-n 1 with veto: the final set meets both the approval and the veto condition, so
        # the decisions are replayed in the order given and the earlier settlement stands.
        assert evaluate_stage("any-n", 1, None, votes(spec)) is expected

    def test_strings_and_enums_are_the_same(self) -> None:
        as_strings = TaskVote("t1", "a", "approver", "completed", "approve")
        as_enums = TaskVote(
            "t1", "a", TaskKind.APPROVER, TaskStatus.COMPLETED, DecisionAction.APPROVE
        )
        assert as_strings == as_enums
        assert as_strings.status is TaskStatus.COMPLETED
        assert evaluate_stage("all", None, None, [as_strings]) is APPROVED

    @pytest.mark.parametrize(
        ("mode", "mode_value"),
        [
            ("all", 1),
            ("any-n", 0),
            ("quorum", None),
            ("quorum", 0),
            ("percentage", None),
            ("percentage", 0),
            ("percentage", 101),
            ("unanimous", None),
        ],
    )
    def test_invalid_mode_or_mode_value_raises(
        self, mode: str, mode_value: int | None
    ) -> None:
        with pytest.raises(ValueError, match="(?i)mode"):
            evaluate_stage(mode, mode_value, None, votes("a?"))


class TestTaskVote:
    @pytest.mark.parametrize(
        ("status", "action"),
        [("completed", None), ("open", "approve"), ("skipped", "reject")],
    )
    def test_action_only_on_completed_tasks(
        self, status: str, action: str | None
    ) -> None:
        with pytest.raises(ValueError, match="completed"):
            TaskVote("t1", "a", "approver", status, action)

    @pytest.mark.parametrize(
        ("kind", "status", "action"),
        [
            ("boss", "open", None),
            ("approver", "done", None),
            ("approver", "completed", "yes"),
        ],
    )
    def test_unknown_values_raise(
        self, kind: str, status: str, action: str | None
    ) -> None:
        with pytest.raises(ValueError, match="is not a valid"):
            TaskVote("t1", "a", kind, status, action)

    def test_from_task(self) -> None:
        @dataclass
        class Row:
            id: uuid.UUID
            assignee: str
            kind: str
            status: str
            decision_action: str | None
            required: bool

        row = Row(uuid.uuid4(), "alice", "approver", "completed", "reject", True)
        assert TaskVote.from_task(row) == TaskVote(
            row.id, "alice", "approver", "completed", "reject", True
        )


class TestTally:
    def test_counts_live_approvers_once(self) -> None:
        # a counted once; d's request_changes neither approves nor rejects; the second a? adds
        # nothing as a has decided; g, h, i no longer take part; observers never count.
        spec = "a+ a+ b- c0 d* e? f~ a? g.reassigned h.expired i.skipped obs:o- obs:p?"
        counted = tally(votes(spec))
        assert counted == Tally(approve=1, reject=1, abstain=2, open=2)
        assert counted.total == 6
        assert counted.decisive == 4
        assert counted.as_counts() == {
            "approve": 1,
            "reject": 1,
            "abstain": 2,
            "open": 2,
        }

    def test_empty(self) -> None:
        assert tally([]) == Tally()


class TestRequiredSet:
    def test_list_and_flags_minus_handed_over(self) -> None:
        spec = "x?! boss.reassigned! deputy?! late.expired!"
        assert required_set(votes(spec), ["boss", "y"]) == {"x", "deputy", "late", "y"}

    def test_reassigned_but_still_live_stays_required(self) -> None:
        assert required_set(votes("boss.reassigned boss?"), ["boss"]) == {"boss"}


# --- stage flow ---------------------------------------------------------------------------------


def stages(spec: str) -> list[StageState]:
    """`g:approved active pending`: stage orders 1, 2, 3...; `g:` puts a stage in group g."""
    result: list[StageState] = []
    for order, token in enumerate(spec.split(), start=1):
        group, _, status = token.rpartition(":")
        # Group names in the spec are letters; parallel_group is an integer (base 36: a=10, b=11).
        result.append(StageState(order, int(group, 36) if group else None, status))
    return result


REJECT = Finish("rejected", REASON_STAGE_REJECTED)

FLOW = [
    case("no stages", "", Finish("approved")),
    case("all skipped", "skipped skipped", Finish("approved")),
    case("approved and skipped", "approved skipped", Finish("approved")),
    case("first stage starts", "pending pending", StartGroup((1,))),
    case("active stage waits", "active pending", Wait()),
    case("resolving stage waits", "resolving pending", Wait()),
    case("next after approval", "approved pending", StartGroup((2,))),
    case("next after skip", "skipped pending", StartGroup((2,))),
    case("group starts together", "g:pending g:pending pending", StartGroup((1, 2))),
    case("group waits for last", "g:approved g:active pending", Wait()),
    case("group then single", "g:approved g:skipped pending", StartGroup((3,))),
    case(
        "two groups: first",
        "a:pending a:pending b:pending b:pending",
        StartGroup((1, 2)),
    ),
    case(
        "two groups: second",
        "a:approved a:skipped b:pending b:pending",
        StartGroup((3, 4)),
    ),
    case(
        "b half-started", "a:approved a:approved b:active b:pending", StartGroup((4,))
    ),
    case("apart: first", "g:pending pending g:pending", StartGroup((1,))),
    case("apart: between", "g:approved pending g:pending", StartGroup((2,))),
    case("apart: second g", "g:approved approved g:pending", StartGroup((3,))),
    case("null groups never join", "pending pending", StartGroup((1,))),
    case("half-started group", "g:active g:pending", StartGroup((2,))),
    case("rejection finishes", "rejected pending", REJECT),
    case("rejection in a group", "g:active g:rejected pending", REJECT),
    case("all approved", "approved g:approved g:approved", Finish("approved")),
]


class TestNextStep:
    @pytest.mark.parametrize(("spec", "expected"), FLOW)
    def test_flow(self, spec: str, expected: Step) -> None:
        assert next_step(stages(spec)) == expected

    def test_stage_order_not_list_order(self) -> None:
        unordered = [StageState(5, None, "pending"), StageState(2, None, "pending")]
        assert next_step(unordered) == StartGroup((2,))

    def test_cancelled_stage_has_no_next_step(self) -> None:
        with pytest.raises(ValueError, match="cancelled"):
            next_step(stages("cancelled pending"))

    def test_duplicate_stage_order_raises(self) -> None:
        twice = [StageState(1, None, "pending"), StageState(1, None, "pending")]
        with pytest.raises(ValueError, match="twice"):
            next_step(twice)

    def test_status_strings_become_enums(self) -> None:
        assert StageState(1, None, "active").status is StageStatus.ACTIVE
        with pytest.raises(ValueError, match="is not a valid"):
            StageState(1, None, "started")

    def test_from_stage(self) -> None:
        @dataclass
        class Row:
            stage_order: int
            parallel_group: int | None
            status: str

        assert StageState.from_stage(Row(3, 7, "skipped")) == StageState(
            3, 7, "skipped"
        )


class TestGroupOf:
    # Orders 1..6 listed out of order: groups {1, 2} a, {3, 4} b, {5}, {6} (a again, apart).
    STAGES = (
        StageState(4, 2, "pending"),
        StageState(1, 1, "pending"),
        StageState(2, 1, "pending"),
        StageState(3, 2, "pending"),
        StageState(5, None, "pending"),
        StageState(6, 1, "pending"),
    )

    @pytest.mark.parametrize(
        ("order", "expected"),
        [(1, (1, 2)), (2, (1, 2)), (3, (3, 4)), (4, (3, 4)), (5, (5,)), (6, (6,))],
    )
    def test_group_of(self, order: int, expected: tuple[int, ...]) -> None:
        assert group_of(self.STAGES, order) == expected

    def test_unknown_stage_order(self) -> None:
        with pytest.raises(ValueError, match="no stage"):
            group_of(self.STAGES, 7)


# --- separation of duties -----------------------------------------------------------------------


def facts(**fields: Any) -> SodFacts:
    defaults: dict[str, Any] = {
        "requester": "req",
        "creator": "maker",
        "forbid_self_approval": True,
        "forbid_repeat_approvers": False,
    }
    return SodFacts(**(defaults | fields))


def reasons(found: dict[str, Barred]) -> dict[str, str]:
    return {user: bar.reason.value for user, bar in found.items()}


class TestBarredUsers:
    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            pytest.param(
                {}, {"req": "requester", "maker": "creator"}, id="requester-and-creator"
            ),
            pytest.param(
                {"creator": "req"}, {"req": "requester"}, id="creator-is-requester"
            ),
            pytest.param({"creator": None}, {"req": "requester"}, id="no-creator"),
            pytest.param(
                {"forbid_self_approval": False, "earlier_approvers": frozenset({"a"})},
                {},
                id="both-rules-off",
            ),
            pytest.param(
                {
                    "forbid_self_approval": False,
                    "forbid_repeat_approvers": True,
                    "earlier_approvers": frozenset({"a", "b"}),
                },
                {"a": "earlier_approver", "b": "earlier_approver"},
                id="earlier-approvers",
            ),
            pytest.param(
                {
                    "delegates": {
                        "req": frozenset({"d1"}),
                        "maker": frozenset({"d2", "d3"}),
                        "zed": frozenset({"d4"}),
                    }
                },
                {
                    "req": "requester",
                    "maker": "creator",
                    "d1": "delegate_of_requester",
                    "d2": "delegate_of_creator",
                    "d3": "delegate_of_creator",
                },
                id="delegates-of-requester-and-creator",
            ),
            pytest.param(
                {
                    "forbid_repeat_approvers": True,
                    "earlier_approvers": frozenset({"a"}),
                    "delegates": {"a": frozenset({"d"})},
                },
                {
                    "req": "requester",
                    "maker": "creator",
                    "a": "earlier_approver",
                    "d": "delegate_of_earlier_approver",
                },
                id="delegate-of-earlier-approver",
            ),
            pytest.param(
                {
                    "forbid_repeat_approvers": True,
                    "earlier_approvers": frozenset({"req", "maker", "x"}),
                    "delegates": {
                        "x": frozenset({"maker", "req"}),
                        "req": frozenset({"maker"}),
                    },
                },
                {"req": "requester", "maker": "creator", "x": "earlier_approver"},
                id="strongest-reason-wins",
            ),
            pytest.param(
                {
                    "forbid_self_approval": False,
                    "delegates": {"req": frozenset({"d1"})},
                },
                {},
                id="delegates-not-barred-without-self-rule",
            ),
        ],
    )
    def test_barred(self, fields: dict[str, Any], expected: dict[str, str]) -> None:
        assert reasons(barred_users(facts(**fields))) == expected

    def test_subject_and_detail(self) -> None:
        found = barred_users(facts(delegates={"maker": frozenset({"dave"})}))
        assert found["dave"] == Barred("dave", SodReason.DELEGATE_OF_CREATOR, "maker")
        assert "maker" in found["dave"].detail
        assert found["maker"].detail == "maker created the request"

    @pytest.mark.parametrize(
        ("actor", "on_behalf_of", "expected"),
        [
            pytest.param("bob", None, None, id="someone-else"),
            pytest.param("req", None, "requester", id="requester"),
            pytest.param("maker", None, "creator", id="creator"),
            pytest.param("del", "req", "requester", id="acting-for-requester"),
            pytest.param("maker", "bob", "creator", id="creator-as-a-delegate"),
            pytest.param("d1", None, "delegate_of_requester", id="requester-delegate"),
            pytest.param("del", "bob", None, id="delegate-for-someone-else"),
            pytest.param("del", "a", "earlier_approver", id="acting-for-earlier"),
        ],
    )
    def test_decision_bar(
        self, actor: str, on_behalf_of: str | None, expected: str | None
    ) -> None:
        found = decision_bar(
            facts(
                forbid_repeat_approvers=True,
                earlier_approvers=frozenset({"a"}),
                delegates={"req": frozenset({"d1"})},
            ),
            actor=actor,
            on_behalf_of=on_behalf_of,
        )
        assert (found.reason.value if found else None) == expected


# --- request status machine ---------------------------------------------------------------------


class TestRequestStatus:
    @pytest.mark.parametrize(
        ("status", "terminal", "decide", "cancel", "resubmit"),
        [
            ("in_review", False, True, True, False),
            ("changes_requested", False, False, True, True),
            ("approved", True, False, False, False),
            ("rejected", True, False, False, False),
            ("cancelled", True, False, False, False),
            ("expired", True, False, False, False),
        ],
    )
    def test_transitions(
        self, status: str, terminal: bool, decide: bool, cancel: bool, resubmit: bool
    ) -> None:
        assert is_terminal(status) is terminal
        assert (RequestStatus(status) in TERMINAL) is terminal
        assert can_decide(status) is decide
        assert can_cancel(status) is cancel
        assert can_resubmit(status) is resubmit

    def test_every_status_is_covered(self) -> None:
        assert {s.value for s in RequestStatus} == {
            "in_review",
            "changes_requested",
            "approved",
            "rejected",
            "cancelled",
            "expired",
        }

    def test_unknown_status_raises(self) -> None:
        with pytest.raises(ValueError, match="is not a valid"):
            can_decide("open")
