"""`evaluate_stage` against a small oracle written straight from the contract's decision table.

Random stages (mode, a valid mode_value, veto None/True/False, 1-8 approver tasks with repeated
assignees, 0-3 observer tasks, some dead tasks, required approvers) go through random runs: each
step decides one open task (approve, reject or abstain) and, in some runs, reassigns, expires or
escalates. At every step the implementation must agree with the oracle, a settled outcome must
stay settled, duplicated tasks and observers must change nothing, and a stage whose approver
tasks are all decided is never pending.

The oracle shares nothing with the implementation: it recounts from the task list, checks the
table's conditions literally, and decides "the threshold can no longer be reached" by trying
every future state instead of reasoning about the extreme one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from countersign.requests.domain import StageOutcome, TaskVote, evaluate_stage, tally

Verdict = Literal["approved", "rejected", "pending"]
ACTIONS = ("approve", "reject", "abstain")
APPROVERS = ("ann", "bob", "cat", "dan", "eve", "fay")
OBSERVERS = ("olga", "otto", "ann")  # an approver may also hold an observer task
SUBSTITUTES = ("sub1", "sub2", "bob")  # reassignment and escalation targets


@dataclass(frozen=True)
class Card:
    """The test's own model of a task."""

    number: int
    assignee: str
    kind: str = "approver"
    status: str = "open"
    action: str | None = None
    required: bool = False


@dataclass(frozen=True)
class Stage:
    mode: str
    mode_value: int | None
    veto: bool | None
    required: tuple[str, ...]


# --- the oracle ---------------------------------------------------------------------------------


def oracle(stage: Stage, cards: list[Card]) -> Verdict:
    """The contract's table, replayed decision by decision; `cards` are in decision order."""
    veto = stage.veto if stage.veto is not None else stage.mode in ("all", "any-n")
    approver_cards = [c for c in cards if c.kind == "approver"]
    live = [c for c in approver_cards if c.status in ("open", "claimed", "completed")]
    people = {c.assignee for c in live}
    required = set(stage.required) | {c.assignee for c in approver_cards if c.required}
    # A reassigned required approver hands the requirement over to the new task.
    required = {
        person
        for person in required
        if person in people
        or not any(
            c.assignee == person and c.status == "reassigned" for c in approver_cards
        )
    }

    def passes(a: int, r: int, b: int, o: int) -> bool:
        t = a + r + b + o
        if stage.mode == "all":
            return o == 0 and r == 0 and a >= 1
        if stage.mode in ("any-n", "quorum"):
            return a >= (stage.mode_value or 1)
        assert stage.mode_value is not None
        return t - b >= 1 and a >= math.ceil(Fraction(stage.mode_value, 100) * (t - b))

    def fails(a: int, r: int, b: int, o: int) -> bool:
        if stage.mode == "all":
            if veto:
                return r >= 1 or (o == 0 and a == 0)
            return o == 0 and (a == 0 or r >= 1)
        if veto and r >= 1:
            return True
        if stage.mode in ("any-n", "quorum"):
            return a + o < (stage.mode_value or 1)
        # Every state the open votes can still lead to: x approve, y reject, z abstain.
        return not any(
            passes(a + x, r + y, b + z, o - x - y - z)
            for x in range(o + 1)
            for y in range(o - x + 1)
            for z in range(o - x - y + 1)
        )

    def verdict(counted: dict[str, str]) -> Verdict:
        a = sum(1 for action in counted.values() if action == "approve")
        r = sum(1 for action in counted.values() if action == "reject")
        b = len(counted) - a - r
        o = len(people) - len(counted)
        required_ok = all(counted.get(person) == "approve" for person in required)
        required_lost = any(
            person not in people or counted.get(person, "approve") != "approve"
            for person in required
        )
        if passes(a, r, b, o) and required_ok:
            return "approved"
        if fails(a, r, b, o) or required_lost:
            return "rejected"
        return "pending"

    counted: dict[str, str] = {}
    outcome = verdict(counted)
    for card in live:
        if outcome != "pending":
            break
        if card.action is not None and card.assignee not in counted:
            counted[card.assignee] = card.action
            outcome = verdict(counted)
    return outcome


# --- running a stage ----------------------------------------------------------------------------


def to_votes(cards: list[Card]) -> list[TaskVote]:
    return [
        TaskVote(f"t{c.number}", c.assignee, c.kind, c.status, c.action, c.required)
        for c in cards
    ]


VERDICTS: dict[StageOutcome, Verdict] = {
    StageOutcome.APPROVED: "approved",
    StageOutcome.REJECTED: "rejected",
    StageOutcome.PENDING: "pending",
}


def evaluate(stage: Stage, cards: list[Card]) -> Verdict:
    outcome = evaluate_stage(
        stage.mode, stage.mode_value, stage.veto, to_votes(cards), stage.required
    )
    return VERDICTS[outcome]


@dataclass
class Run:
    """A stage's tasks as they change; `decided` holds card numbers in decision order."""

    cards: list[Card]
    decided: list[int]

    def in_decision_order(self) -> list[Card]:
        by_number = {card.number: card for card in self.cards}
        decided = [by_number[number] for number in self.decided]
        return decided + [card for card in self.cards if card.action is None]

    def undecided(self, kind: str | None = None) -> list[Card]:
        return [
            card
            for card in self.cards
            if card.status in ("open", "claimed") and kind in (None, card.kind)
        ]

    def update(self, card: Card, status: str, action: str | None = None) -> None:
        changed = replace(card, status=status, action=action)
        self.cards = [changed if c.number == card.number else c for c in self.cards]
        if action is not None:
            self.decided.append(card.number)

    def add(
        self,
        assignee: str,
        *,
        kind: str = "approver",
        status: str = "open",
        required: bool = False,
    ) -> None:
        self.cards.append(
            Card(len(self.cards) + 1, assignee, kind, status, required=required)
        )


@st.composite
def stages(draw: st.DrawFn) -> Stage:
    mode = draw(st.sampled_from(["all", "any-n", "quorum", "percentage"]))
    if mode == "all":
        mode_value = None
    elif mode == "any-n":
        mode_value = draw(st.none() | st.integers(1, 4))
    elif mode == "quorum":
        mode_value = draw(st.integers(1, 5))
    else:
        mode_value = draw(
            st.sampled_from([1, 33, 50, 51, 67, 99, 100]) | st.integers(1, 100)
        )
    veto = draw(st.sampled_from([None, True, False]))
    return Stage(mode, mode_value, veto, ())


@st.composite
def initial_runs(draw: st.DrawFn) -> tuple[Stage, Run]:
    stage = draw(stages())
    approvers = draw(st.lists(st.sampled_from(APPROVERS), min_size=1, max_size=8))
    observers = draw(st.lists(st.sampled_from(OBSERVERS), max_size=3))
    required = draw(st.sets(st.sampled_from(sorted(set(approvers))), max_size=2))
    # Required approvers named by the stage's list, by the task flag, or both.
    via = draw(st.sampled_from(["list", "flag", "both"]))
    run = Run([], [])
    for person in approvers:
        run.add(
            person,
            status=draw(st.sampled_from(["open", "claimed"])),
            required=via != "list" and person in required,
        )
    for person in observers:
        run.add(person, kind="observer")
    # Tasks that no longer take part, sometimes of a required approver.
    for _ in range(draw(st.integers(0, 2))):
        run.add(
            draw(st.sampled_from(APPROVERS)),
            status=draw(st.sampled_from(["reassigned", "expired", "skipped"])),
            required=draw(st.booleans()),
        )
    draw(st.randoms()).shuffle(run.cards)
    return replace(
        stage, required=tuple(sorted(required)) if via != "flag" else ()
    ), run


def check_step(stage: Stage, run: Run, settled: Verdict | None) -> Verdict:
    cards = run.in_decision_order()
    outcome = evaluate(stage, cards)

    # (a) the oracle agrees at every step.
    assert outcome == oracle(stage, cards), (stage, cards)

    # (b) a settled outcome stays settled.
    if settled is not None:
        assert outcome == settled, (stage, cards)

    # (c) an approver never counts twice: more tasks for people who already have a live task
    # (an open one, and a later decision of each kind) change nothing, and the tally has one
    # vote per person.
    live = [
        c
        for c in cards
        if c.kind == "approver" and c.status in ("open", "claimed", "completed")
    ]
    copies = [
        Card(1000 + i, c.assignee, required=c.required) for i, c in enumerate(live)
    ] + [
        Card(2000 + 10 * i + j, c.assignee, status="completed", action=action)
        for i, c in enumerate(live)
        if c.action is not None
        for j, action in enumerate(ACTIONS)
    ]
    assert evaluate(stage, cards + copies) == outcome, (stage, cards)
    assert tally(to_votes(cards)).total == len({c.assignee for c in live})

    # (d) observers never change the outcome.
    without_observers = [c for c in cards if c.kind != "observer"]
    assert evaluate(stage, without_observers) == outcome, (stage, cards)

    # (e) nothing hangs: with no undecided approver task the stage is settled.
    if not run.undecided("approver"):
        assert outcome != "pending", (stage, cards)
    return outcome


@settings(max_examples=300, deadline=None)
@given(initial_runs(), st.data())
def test_decisions_agree_with_the_oracle_and_settle_for_good(
    start: tuple[Stage, Run], data: st.DataObject
) -> None:
    stage, run = start
    settled: Verdict | None = None
    while True:
        outcome = check_step(stage, run, settled)
        if outcome != "pending":
            settled = outcome
        undecided = run.undecided()
        if not undecided:
            break
        card = data.draw(st.sampled_from(undecided))
        action = data.draw(st.sampled_from(ACTIONS))
        run.update(card, "completed", action)


@settings(max_examples=300, deadline=None)
@given(initial_runs(), st.data())
def test_reassignment_expiry_and_escalation_agree_with_the_oracle(
    start: tuple[Stage, Run], data: st.DataObject
) -> None:
    stage, run = start
    settled: Verdict | None = None
    changes = 0
    while True:
        outcome = check_step(stage, run, settled)
        if outcome != "pending":
            settled = outcome
        undecided = run.undecided()
        if not undecided:
            break
        event = "decide"
        if changes < 4:
            event = data.draw(
                st.sampled_from(["decide", "decide", "reassign", "expire", "escalate"])
            )
        card = data.draw(st.sampled_from(undecided))
        if event == "decide":
            run.update(card, "completed", data.draw(st.sampled_from(ACTIONS)))
            continue
        changes += 1
        if event == "expire":
            # Taking an open task out (expiry, skipping) never unsettles a stage.
            run.update(card, data.draw(st.sampled_from(["expired", "skipped"])))
        elif event == "reassign":
            # The requirement travels with the task. A replacement can reopen a settled stage
            # (e.g. a required approver whose task had expired gets a live one again).
            run.update(card, "reassigned")
            run.add(
                data.draw(st.sampled_from(SUBSTITUTES + APPROVERS)),
                kind=card.kind,
                required=card.required,
            )
            settled = None
        else:
            # Escalation adds approver tasks; only active stages are escalated, and new open
            # tasks may reopen what the old set had settled.
            run.add(data.draw(st.sampled_from(SUBSTITUTES)))
            settled = None


@settings(max_examples=300, deadline=None)
@given(
    stages(), st.integers(0, 6), st.integers(0, 6), st.integers(0, 6), st.integers(0, 6)
)
def test_counts_alone_agree_with_the_oracle(
    stage: Stage, approve: int, reject: int, abstain: int, undecided: int
) -> None:
    # A direct check of the table over counts alone, including stages with no decisions yet.
    cards = (
        [Card(i, f"a{i}", status="completed", action="approve") for i in range(approve)]
        + [
            Card(100 + i, f"r{i}", status="completed", action="reject")
            for i in range(reject)
        ]
        + [
            Card(200 + i, f"b{i}", status="completed", action="abstain")
            for i in range(abstain)
        ]
        + [Card(300 + i, f"o{i}") for i in range(undecided)]
    )
    assert evaluate(stage, cards) == oracle(stage, cards)


def test_oracle_sanity() -> None:
    # The oracle itself on the contract's own sentences, so a wrong oracle cannot hide a bug.
    all_mode = Stage("all", None, None, ())
    abstain = Card(1, "a", status="completed", action="abstain")
    approve = Card(2, "b", status="completed", action="approve")
    assert oracle(all_mode, [abstain, approve]) == "approved"
    assert oracle(all_mode, [abstain]) == "rejected"
    quorum = Stage("quorum", 2, None, ())
    reject = Card(3, "c", status="completed", action="reject")
    assert oracle(quorum, [reject, approve, Card(4, "d")]) == "pending"
    percentage = Stage("percentage", 67, None, ())
    assert (
        oracle(
            percentage,
            [approve, Card(5, "e", status="completed", action="approve"), Card(4, "d")],
        )
        == "pending"
    )
    assert StageOutcome.PENDING.value == "pending"
