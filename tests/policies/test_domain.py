from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from countersign.errors import (
    AppError,
    CallbackNotAllowed,
    PolicyInvalid,
    RuleEvaluationError,
    RuleUnsafe,
)
from countersign.policies.domain import (
    SKIP_REASON_NO_APPROVERS,
    SKIP_REASON_SKIP_IF,
    StagePlan,
    blocks_on_empty,
    diff_policies,
    plan_stage,
    should_skip,
    simulate_outcome,
    validate_policy,
)
from countersign.policies.rules import RuleEvaluator, rule_data
from countersign.policies.schemas import (
    PolicyIn,
    PolicyOut,
    ResolutionTrace,
    RuleIn,
    SimulatedStage,
    StageIn,
)

Body = dict[str, Any]


def full_policy() -> Body:
    """A valid policy using every feature: the contract's example plus three more stages."""
    return {
        "policy_key": "registry.change_request",
        "name": "Change request approval",
        "description": "optional",
        "artifact_type": "registry.change_request",
        "forbid_self_approval": True,
        "forbid_repeat_approvers": False,
        "allow_request_changes": True,
        "request_ttl_hours": None,
        "applies_if": {"==": [{"var": "agency"}, "HRSA"]},
        "priority": 0,
        "stages": [
            {
                "stage_order": 1,
                "name": "District officers",
                "mode": "any-n",
                "mode_value": 1,
                "veto": None,
                "parallel_group": None,
                "skip_if": {"<": [{"var": "amount"}, 100]},
                "on_empty": "block",
                "sla_hours": 72,
                "on_breach": "escalate",
                "escalation_rules": [
                    {"rule_type": "user", "rule_value": {"user_id": "supervisor"}},
                    {
                        "rule_type": "expression",
                        "rule_value": {"logic": {"var": "backup"}},
                    },
                ],
                "reminder_hours": 24,
                "rules": [
                    {
                        "rule_type": "group",
                        "rule_value": {"group": "/districts/D1"},
                        "kind": "approver",
                        "required": False,
                    }
                ],
            },
            {
                "stage_order": 2,
                "name": "Finance",
                "mode": "quorum",
                "mode_value": 2,
                "parallel_group": 1,
                "rules": [
                    {"rule_type": "user", "rule_value": {"user_id": "alice"}},
                    {
                        "rule_type": "user",
                        "rule_value": {"user_id": "bob"},
                        "required": True,
                    },
                    {
                        "rule_type": "user",
                        "rule_value": {"user_id": "carol"},
                        "kind": "observer",
                    },
                ],
            },
            {
                "stage_order": 3,
                "name": "Legal",
                "mode": "percentage",
                "mode_value": 50,
                "parallel_group": 1,
                "rules": [
                    {
                        "rule_type": "role",
                        "rule_value": {"role": "legal", "client": "registry"},
                    },
                    {
                        "rule_type": "expression",
                        "rule_value": {
                            "logic": {
                                "if": [{">": [{"var": "amount"}, 1000]}, "cfo", []]
                            }
                        },
                    },
                ],
            },
            {
                "stage_order": 4,
                "name": "Director",
                "mode": "all",
                "mode_value": None,
                "on_empty": "skip",
                "sla_hours": 24,
                "on_breach": "auto_reject",
                "rules": [
                    {
                        "rule_type": "http",
                        "rule_value": {
                            "url": "https://resolver.example/approvers",
                            "timeout_seconds": 5,
                        },
                    },
                    {"rule_type": "role", "rule_value": {"role": "director"}},
                ],
            },
        ],
    }


def mutated(change: Callable[[Body], object]) -> PolicyIn:
    body = full_policy()
    change(body)
    return PolicyIn.model_validate(body)


def stage(body: Body, index: int) -> Body:
    result: Body = body["stages"][index]
    return result


def setter(index: int, **fields: Any) -> Callable[[Body], object]:
    return lambda body: stage(body, index).update(fields)


def rule_value(
    index: int, rule: int, value: Body, key: str = "rules"
) -> Callable[[Body], object]:
    return lambda body: stage(body, index)[key][rule].update(rule_value=value)


def problems_of(error: AppError) -> list[str]:
    return [problem.pointer for problem in error.problems]


class TestValidatePolicy:
    def test_full_policy_is_valid(self) -> None:
        validate_policy(PolicyIn.model_validate(full_policy()))

    def test_policy_without_stages_is_valid(self) -> None:
        validate_policy(PolicyIn(policy_key="k", name="n", artifact_type="t"))

    @pytest.mark.parametrize(
        "change",
        [
            pytest.param(setter(0, mode_value=None), id="any-n-defaults-to-1"),
            pytest.param(setter(2, mode_value=100), id="percentage-100"),
            pytest.param(setter(2, mode_value=1), id="percentage-1"),
            pytest.param(
                setter(3, stage_order=10), id="stage-orders-need-not-be-contiguous"
            ),
            pytest.param(setter(1, mode_value=2, rules=[]), id="no-approver-rules"),
            pytest.param(
                lambda b: stage(b, 1)["rules"].append(
                    {"rule_type": "role", "rule_value": {"role": "finance"}}
                ),
                id="quorum-bound-unknown-with-role-rule",
            ),
            pytest.param(
                lambda b: (
                    stage(b, 1).update(mode_value=3)
                    or stage(b, 1)["rules"].append(
                        {"rule_type": "group", "rule_value": {"group": "/finance"}}
                    )
                ),
                id="quorum-3-with-group-rule",
            ),
            pytest.param(
                rule_value(
                    3, 0, {"url": "https://resolver.example/x", "timeout_seconds": 30}
                ),
                id="http-timeout-30",
            ),
            pytest.param(
                rule_value(3, 0, {"url": "http://resolver.example/x"}), id="http-url"
            ),
            pytest.param(
                rule_value(1, 0, {"user_id": "alice", "note": "x"}),
                id="unknown-keys-ignored",
            ),
            pytest.param(
                rule_value(2, 0, {"role": "legal", "client": None}), id="client-null"
            ),
            pytest.param(setter(3, on_breach=None, sla_hours=None), id="no-sla"),
            pytest.param(
                setter(3, reminder_hours=12, on_breach=None, sla_hours=None),
                id="reminder-only",
            ),
            pytest.param(lambda b: b.update(applies_if=None), id="no-applies-if"),
            pytest.param(rule_value(2, 1, {"logic": None}), id="expression-null-logic"),
        ],
    )
    def test_valid_variants(self, change: Callable[[Body], object]) -> None:
        validate_policy(mutated(change))

    @pytest.mark.parametrize(
        ("change", "pointers"),
        [
            pytest.param(
                setter(2, stage_order=2),
                ["/stages/2/stage_order"],
                id="duplicate-stage-order",
            ),
            pytest.param(
                lambda b: [s.update(stage_order=1) for s in b["stages"]],
                [
                    "/stages/1/stage_order",
                    "/stages/2/stage_order",
                    "/stages/3/stage_order",
                ],
                id="all-duplicate-stage-orders",
            ),
            pytest.param(
                setter(0, stage_order=0),
                ["/stages/0/stage_order"],
                id="stage-order-zero",
            ),
            pytest.param(
                setter(0, stage_order=-3),
                ["/stages/0/stage_order"],
                id="stage-order-negative",
            ),
            pytest.param(
                setter(0, mode_value=0), ["/stages/0/mode_value"], id="any-n-zero"
            ),
            pytest.param(
                setter(1, mode_value=None),
                ["/stages/1/mode_value"],
                id="quorum-missing",
            ),
            pytest.param(
                setter(1, mode_value=0), ["/stages/1/mode_value"], id="quorum-zero"
            ),
            pytest.param(
                setter(1, mode_value=3),
                ["/stages/1/mode_value"],
                id="quorum-above-literal-approvers",
            ),
            pytest.param(
                rule_value(1, 1, {"user_id": "alice"}),
                ["/stages/1/mode_value"],
                id="quorum-duplicate-users-count-once",
            ),
            pytest.param(
                setter(
                    1,
                    mode="any-n",
                    mode_value=2,
                    rules=[{"rule_type": "user", "rule_value": {"user_id": "alice"}}],
                ),
                ["/stages/1/mode_value"],
                id="any-n-above-literal-approvers",
            ),
            pytest.param(
                setter(2, mode_value=None),
                ["/stages/2/mode_value"],
                id="percentage-missing",
            ),
            pytest.param(
                setter(2, mode_value=0), ["/stages/2/mode_value"], id="percentage-zero"
            ),
            pytest.param(
                setter(2, mode_value=101), ["/stages/2/mode_value"], id="percentage-101"
            ),
            pytest.param(
                setter(3, mode_value=1),
                ["/stages/3/mode_value"],
                id="all-with-mode-value",
            ),
            pytest.param(
                setter(2, stage_order=5),
                ["/stages/2/parallel_group"],
                id="parallel-group-not-adjacent",
            ),
            pytest.param(
                setter(0, parallel_group=1, stage_order=9),
                ["/stages/0/parallel_group"],
                id="parallel-group-reappears-after-other-stage",
            ),
            pytest.param(
                rule_value(1, 0, {}),
                ["/stages/1/rules/0/rule_value/user_id"],
                id="user-missing",
            ),
            pytest.param(
                rule_value(1, 0, {"user_id": ""}),
                ["/stages/1/rules/0/rule_value/user_id"],
                id="user-empty",
            ),
            pytest.param(
                rule_value(1, 0, {"user_id": 5}),
                ["/stages/1/rules/0/rule_value/user_id"],
                id="user-number",
            ),
            pytest.param(
                rule_value(2, 0, {"client": "x"}),
                ["/stages/2/rules/0/rule_value/role"],
                id="role-missing",
            ),
            pytest.param(
                rule_value(2, 0, {"role": "legal", "client": ""}),
                ["/stages/2/rules/0/rule_value/client"],
                id="role-client-empty",
            ),
            pytest.param(
                rule_value(0, 0, {"group": "districts/D1"}),
                ["/stages/0/rules/0/rule_value/group"],
                id="group-without-slash",
            ),
            pytest.param(
                rule_value(0, 0, {}),
                ["/stages/0/rules/0/rule_value/group"],
                id="group-missing",
            ),
            pytest.param(
                rule_value(2, 1, {}),
                ["/stages/2/rules/1/rule_value/logic"],
                id="expression-missing",
            ),
            pytest.param(
                rule_value(3, 0, {}),
                ["/stages/3/rules/0/rule_value/url"],
                id="http-url-missing",
            ),
            pytest.param(
                rule_value(3, 0, {"url": "ftp://resolver.example/x"}),
                ["/stages/3/rules/0/rule_value/url"],
                id="http-url-scheme",
            ),
            pytest.param(
                rule_value(3, 0, {"url": "/relative"}),
                ["/stages/3/rules/0/rule_value/url"],
                id="http-url-relative",
            ),
            *[
                pytest.param(
                    rule_value(
                        3,
                        0,
                        {
                            "url": "https://resolver.example/x",
                            "timeout_seconds": timeout,
                        },
                    ),
                    ["/stages/3/rules/0/rule_value/timeout_seconds"],
                    id=f"http-timeout-{timeout}",
                )
                for timeout in (0, -1, 30.5, 31, True, "5", None, float("nan"))
            ],
            pytest.param(
                setter(0, escalation_rules=[]),
                ["/stages/0/escalation_rules"],
                id="escalate-without-rules",
            ),
            pytest.param(
                setter(0, sla_hours=None),
                ["/stages/0/on_breach"],
                id="on-breach-without-sla",
            ),
            pytest.param(
                rule_value(0, 0, {"user_id": ""}, key="escalation_rules"),
                ["/stages/0/escalation_rules/0/rule_value/user_id"],
                id="escalation-rule-shape",
            ),
            pytest.param(
                rule_value(
                    0, 1, {"logic": {"var": "x"}, "url": 1}, key="escalation_rules"
                ),
                [],
                id="escalation-expression-ignores-other-keys",
            ),
        ],
    )
    def test_problem_pointers(
        self, change: Callable[[Body], object], pointers: list[str]
    ) -> None:
        policy = mutated(change)
        if not pointers:
            validate_policy(policy)
            return
        with pytest.raises(PolicyInvalid) as caught:
            validate_policy(policy)
        assert problems_of(caught.value) == pointers
        assert all(problem.detail for problem in caught.value.problems)

    def test_every_problem_is_reported_at_once_in_document_order(self) -> None:
        def change(body: Body) -> None:
            stage(body, 3)["mode_value"] = 2
            stage(body, 0)["mode_value"] = 0
            stage(body, 2)["stage_order"] = 2
            stage(body, 1)["rules"][0]["rule_value"] = {}
            stage(body, 0)["escalation_rules"] = []

        with pytest.raises(PolicyInvalid) as caught:
            validate_policy(mutated(change))
        assert problems_of(caught.value) == [
            "/stages/0/mode_value",
            "/stages/0/escalation_rules",
            "/stages/1/rules/0/rule_value/user_id",
            "/stages/2/stage_order",
            "/stages/3/mode_value",
        ]
        assert caught.value.code == "policy_invalid"

    @pytest.mark.parametrize(
        ("change", "pointer"),
        [
            pytest.param(
                lambda b: b.update(applies_if={"method": ["abc", "upper"]}),
                "/applies_if",
                id="applies-if",
            ),
            pytest.param(
                setter(0, skip_if={"log": 1}), "/stages/0/skip_if", id="skip-if"
            ),
            pytest.param(
                rule_value(2, 1, {"logic": {"if": [True, {"method": ["a", "upper"]}]}}),
                "/stages/2/rules/1/rule_value/logic/if/1",
                id="expression-rule",
            ),
            pytest.param(
                rule_value(
                    0, 1, {"logic": {"filter": [[1], True]}}, key="escalation_rules"
                ),
                "/stages/0/escalation_rules/1/rule_value/logic",
                id="escalation-expression-rule",
            ),
        ],
    )
    def test_unsafe_rule_raises_rule_unsafe(
        self, change: Callable[[Body], object], pointer: str
    ) -> None:
        with pytest.raises(RuleUnsafe) as caught:
            validate_policy(mutated(change))
        assert problems_of(caught.value) == [pointer]

    def test_unsafe_rules_win_over_other_problems_and_are_all_reported(self) -> None:
        def change(body: Body) -> None:
            body["applies_if"] = {"method": ["abc", "upper"]}
            stage(body, 1)["skip_if"] = {"log": 1}
            stage(body, 2)["mode_value"] = 0

        with pytest.raises(RuleUnsafe) as caught:
            validate_policy(mutated(change))
        assert problems_of(caught.value) == ["/applies_if", "/stages/1/skip_if"]

    def test_too_deep_rule_is_unsafe(self) -> None:
        logic: Any = True
        for _ in range(100_000):
            logic = {"!": logic}
        with pytest.raises(RuleUnsafe) as caught:
            validate_policy(mutated(setter(0, skip_if=logic)))
        assert problems_of(caught.value)[0].startswith("/stages/0/skip_if/!/!")


class TestOutboundUrls:
    @staticmethod
    def refuse_internal(url: str) -> str | None:
        return "loopback addresses are not allowed" if "127.0.0.1" in url else None

    def with_internal_url(self, body: Body) -> None:
        stage(body, 3)["rules"][0]["rule_value"] = {"url": "http://127.0.0.1/approvers"}

    def test_allowed_url_passes(self) -> None:
        validate_policy(
            PolicyIn.model_validate(full_policy()), url_allowed=self.refuse_internal
        )

    def test_without_outbound_policy_urls_are_not_checked(self) -> None:
        validate_policy(mutated(self.with_internal_url))

    def test_refused_url_alone_is_callback_not_allowed(self) -> None:
        with pytest.raises(CallbackNotAllowed) as caught:
            validate_policy(
                mutated(self.with_internal_url), url_allowed=self.refuse_internal
            )
        assert [(p.pointer, p.detail) for p in caught.value.problems] == [
            ("/stages/3/rules/0/rule_value/url", "loopback addresses are not allowed")
        ]

    def test_refused_escalation_url_has_its_pointer(self) -> None:
        def change(body: Body) -> None:
            stage(body, 0)["escalation_rules"][0] = {
                "rule_type": "http",
                "rule_value": {"url": "https://127.0.0.1/x"},
            }

        with pytest.raises(CallbackNotAllowed) as caught:
            validate_policy(mutated(change), url_allowed=self.refuse_internal)
        assert problems_of(caught.value) == [
            "/stages/0/escalation_rules/0/rule_value/url"
        ]

    def test_refused_url_with_other_problems_is_reported_with_them(self) -> None:
        def change(body: Body) -> None:
            self.with_internal_url(body)
            stage(body, 0)["mode_value"] = 0

        with pytest.raises(PolicyInvalid) as caught:
            validate_policy(mutated(change), url_allowed=self.refuse_internal)
        assert problems_of(caught.value) == [
            "/stages/0/mode_value",
            "/stages/3/rules/0/rule_value/url",
        ]


class TestSchemas:
    @pytest.mark.parametrize(
        "change",
        [
            pytest.param(setter(0, mode="majority"), id="unknown-mode"),
            pytest.param(
                lambda b: stage(b, 0)["rules"][0].update(rule_type="script"),
                id="unknown-rule-type",
            ),
            pytest.param(
                lambda b: stage(b, 0)["rules"][0].update(kind="watcher"),
                id="unknown-kind",
            ),
            pytest.param(setter(0, on_empty="ignore"), id="unknown-on-empty"),
            pytest.param(setter(0, on_breach="page"), id="unknown-on-breach"),
            pytest.param(setter(0, sla_hours=0), id="sla-zero"),
            pytest.param(setter(0, reminder_hours=-1), id="reminder-negative"),
            pytest.param(lambda b: b.update(policy_key=""), id="empty-key"),
            pytest.param(lambda b: b.update(policy_key="a b"), id="key-with-space"),
            pytest.param(lambda b: b.update(policy_key="k" * 201), id="key-too-long"),
            pytest.param(
                lambda b: b.update(artifact_type=""), id="empty-artifact-type"
            ),
            pytest.param(
                lambda b: b.update(stages=[stage(b, 3)] * 101), id="too-many-stages"
            ),
            pytest.param(setter(0, stage_order="first"), id="stage-order-not-int"),
        ],
    )
    def test_wrong_types_are_pydantic_errors(
        self, change: Callable[[Body], object]
    ) -> None:
        with pytest.raises(ValidationError):
            mutated(change)

    def test_unknown_fields_are_ignored(self) -> None:
        body = full_policy()
        body["awe_only"] = 1
        stage(body, 0)["awe_stage_field"] = "x"
        policy = PolicyIn.model_validate(body)
        assert "awe_only" not in policy.model_dump()

    def test_defaults(self) -> None:
        policy = PolicyIn.model_validate(
            {
                "policy_key": "registry.change_request:v2_x-1",
                "name": "n",
                "artifact_type": "t",
                "stages": [
                    {
                        "stage_order": 1,
                        "name": "s",
                        "mode": "all",
                        "rules": [
                            {"rule_type": "user", "rule_value": {"user_id": "a"}}
                        ],
                    }
                ],
            }
        )
        assert (policy.forbid_self_approval, policy.forbid_repeat_approvers) == (
            True,
            False,
        )
        assert (policy.allow_request_changes, policy.priority, policy.applies_if) == (
            True,
            0,
            None,
        )
        first = policy.stages[0]
        assert (first.on_empty, first.escalation_rules, first.mode_value) == (
            "block",
            [],
            None,
        )
        assert (first.rules[0].kind, first.rules[0].required) == ("approver", False)


def rule(kind: str = "approver", required: bool = False) -> RuleIn:
    return RuleIn.model_validate(
        {
            "rule_type": "user",
            "rule_value": {"user_id": "x"},
            "kind": kind,
            "required": required,
        }
    )


APPROVER = rule()
REQUIRED = rule(required=True)
OBSERVER = rule(kind="observer")
A_STAGE = StageIn(stage_order=1, name="s", mode="all")


class TestPlanStage:
    @pytest.mark.parametrize(
        ("resolved", "options", "expected"),
        [
            pytest.param(
                [(APPROVER, ["alice", "bob"]), (APPROVER, ["bob", "carol", "alice"])],
                {},
                StagePlan(("alice", "bob", "carol"), (), (), ()),
                id="union-deduplicated-first-appearance",
            ),
            pytest.param(
                [(OBSERVER, ["carol", "dave", "dave"]), (APPROVER, ["carol", "erin"])],
                {},
                StagePlan(("carol", "erin"), ("dave",), (), ()),
                id="observers-exclude-approvers",
            ),
            pytest.param(
                [
                    (APPROVER, ["alice", "bob"]),
                    (REQUIRED, ["bob", "carol"]),
                    (REQUIRED, ["bob"]),
                ],
                {},
                StagePlan(("alice", "bob", "carol"), (), ("bob", "carol"), ()),
                id="required",
            ),
            pytest.param(
                [(APPROVER, ["alice", "bob"]), (REQUIRED, ["alice"])],
                {"barred": {"alice"}},
                StagePlan(("bob",), (), (), ("alice",)),
                id="barred-removed-also-from-required",
            ),
            pytest.param(
                [(APPROVER, ["alice", "bob"])],
                {"barred": {"zoe"}},
                StagePlan(("alice", "bob"), (), (), ()),
                id="barred-but-not-resolved",
            ),
            pytest.param(
                [(APPROVER, ["dan", "bob", "alice"])],
                {"barred": {"dan", "alice"}},
                StagePlan(("bob",), (), (), ("dan", "alice")),
                id="removed-in-resolution-order",
            ),
            pytest.param(
                [(APPROVER, ["alice", "bob", "carol"])],
                {"barred": {"carol", "alice"}},
                StagePlan(("bob",), (), (), ("alice", "carol")),
                id="repeat-approvers-removed",
            ),
            pytest.param(
                [(APPROVER, ["alice"]), (OBSERVER, ["alice", "zed"])],
                {"barred": {"alice"}},
                StagePlan((), ("alice", "zed"), (), ("alice",)),
                id="requester-may-still-observe",
            ),
            pytest.param(
                [(APPROVER, ["alice"])],
                {"barred": set()},
                StagePlan(("alice",), (), (), ()),
                id="nobody-barred",
            ),
            pytest.param(
                [(APPROVER, ["", "alice", ""]), (OBSERVER, [""])],
                {},
                StagePlan(("alice",), (), (), ()),
                id="empty-ids-dropped",
            ),
            pytest.param([], {}, StagePlan((), (), (), ()), id="nothing-resolved"),
        ],
    )
    def test_plan(
        self,
        resolved: list[tuple[RuleIn, list[str]]],
        options: dict[str, Any],
        expected: StagePlan,
    ) -> None:
        arguments: dict[str, Any] = {"barred": set()} | options
        assert plan_stage(A_STAGE, resolved=resolved, **arguments) == expected


def simulated(skipped: bool, approvers: list[str]) -> SimulatedStage:
    return SimulatedStage(
        stage_order=1,
        name="s",
        mode="all",
        mode_value=None,
        resolved_approvers=approvers,
        observers=[],
        required_approvers=[],
        removed_by_sod=[],
        skipped=skipped,
        skip_reason="skip_if" if skipped else None,
        trace=ResolutionTrace(
            rules=[], removed=[], delegations=[], skip_condition=None, skip_result=None
        ),
    )


class TestSimulateOutcome:
    @pytest.mark.parametrize(
        ("stages", "outcome"),
        [
            pytest.param([], "approved", id="no-stages"),
            pytest.param(
                [simulated(True, []), simulated(True, [])], "approved", id="all-skipped"
            ),
            pytest.param(
                [simulated(True, []), simulated(False, ["a"])], "pending", id="one-live"
            ),
            pytest.param(
                [simulated(False, ["a"]), simulated(False, [])],
                "rejected",
                id="later-stage-blocks",
            ),
            pytest.param([simulated(False, [])], "rejected", id="blocks"),
        ],
    )
    def test_outcome(self, stages: list[SimulatedStage], outcome: str) -> None:
        assert simulate_outcome(stages) == outcome


class TestShouldSkip:
    evaluator = RuleEvaluator()

    @pytest.mark.parametrize(
        ("skip_if", "on_empty", "approvers", "expected"),
        [
            pytest.param(
                {"<": [{"var": "amount"}, 100]},
                "block",
                None,
                (True, SKIP_REASON_SKIP_IF),
                id="skip-if-true",
            ),
            pytest.param(
                {"<": [{"var": "amount"}, 10]},
                "block",
                None,
                (False, None),
                id="skip-if-false",
            ),
            pytest.param(
                {"var": "_request.requester"},
                "block",
                None,
                (True, SKIP_REASON_SKIP_IF),
                id="request-field",
            ),
            pytest.param(
                {"var": "tags"}, "block", None, (False, None), id="empty-list-is-falsy"
            ),
            pytest.param(
                "0",
                "block",
                None,
                (True, SKIP_REASON_SKIP_IF),
                id="string-zero-is-truthy",
            ),
            pytest.param(None, "block", None, (False, None), id="no-skip-if"),
            pytest.param(
                None,
                "skip",
                [],
                (True, SKIP_REASON_NO_APPROVERS),
                id="empty-on-empty-skip",
            ),
            pytest.param(None, "block", [], (False, None), id="empty-on-empty-block"),
            pytest.param(
                None, "skip", ["a"], (False, None), id="resolved-on-empty-skip"
            ),
            pytest.param(
                {"<": [{"var": "amount"}, 100]},
                "skip",
                [],
                (True, SKIP_REASON_SKIP_IF),
                id="skip-if-wins",
            ),
        ],
    )
    def test_should_skip(
        self,
        skip_if: Any,
        on_empty: str,
        approvers: list[str] | None,
        expected: tuple[bool, str | None],
    ) -> None:
        a_stage = StageIn.model_validate(
            {
                "stage_order": 1,
                "name": "s",
                "mode": "all",
                "skip_if": skip_if,
                "on_empty": on_empty,
            }
        )
        data = rule_data({"amount": 50, "tags": []}, {"requester": "alice"})
        assert (
            should_skip(a_stage, data, self.evaluator, approvers=approvers) == expected
        )

    def test_unsafe_skip_if_is_never_evaluated(self) -> None:
        a_stage = StageIn(
            stage_order=1, name="s", mode="all", skip_if={"method": ["a", "upper"]}
        )
        with pytest.raises(RuleUnsafe):
            should_skip(a_stage, {}, self.evaluator, pointer="/stages/0/skip_if")

    def test_failing_skip_if_names_its_pointer(self) -> None:
        a_stage = StageIn(stage_order=1, name="s", mode="all", skip_if={"/": [1, 0]})
        with pytest.raises(RuleEvaluationError) as caught:
            should_skip(a_stage, {}, self.evaluator, pointer="/stages/3/skip_if")
        assert problems_of(caught.value) == ["/stages/3/skip_if"]

    @pytest.mark.parametrize(
        ("on_empty", "approvers", "blocks"),
        [("block", [], True), ("block", ["a"], False), ("skip", [], False)],
    )
    def test_blocks_on_empty(
        self, on_empty: str, approvers: list[str], blocks: bool
    ) -> None:
        a_stage = StageIn.model_validate(
            {"stage_order": 1, "name": "s", "mode": "all", "on_empty": on_empty}
        )
        assert blocks_on_empty(a_stage, approvers) is blocks


def stored(body: Body, *, version: int, status: str = "draft") -> Body:
    """The JSON a stored version serves: the body plus bookkeeping fields and stage ids."""
    out = PolicyOut.model_validate(
        body
        | {
            "id": uuid.uuid4(),
            "version": version,
            "status": status,
            "created_by": f"admin{version}",
            "created_at": datetime(2026, 1, version, tzinfo=UTC),
            "stages": [s | {"id": uuid.uuid4()} for s in body["stages"]],
        }
    )
    return out.model_dump(mode="json")


class TestDiffPolicies:
    def test_bookkeeping_fields_are_ignored(self) -> None:
        body = full_policy()
        assert (
            diff_policies(
                stored(body, version=1), stored(body, version=2, status="active")
            )
            == []
        )

    def test_changes_between_stored_versions(self) -> None:
        before = full_policy()
        after = copy.deepcopy(before)
        after["name"] = "Renamed"
        stage(after, 1)["mode_value"] = 1
        stage(after, 1)["rules"].pop()
        old = stored(before, version=1)
        new = stored(after, version=2)
        assert diff_policies(old, new) == [
            {
                "pointer": "/name",
                "before": "Change request approval",
                "after": "Renamed",
            },
            {"pointer": "/stages/1/mode_value", "before": 2, "after": 1},
            {
                "pointer": "/stages/1/rules/2",
                "before": old["stages"][1]["rules"][2],
                "after": None,
            },
        ]

    def test_added_stage_is_one_change_without_its_id(self) -> None:
        before = full_policy()
        after = copy.deepcopy(before)
        after["stages"].append(copy.deepcopy(stage(before, 3)) | {"stage_order": 5})
        changes = diff_policies(stored(before, version=1), stored(after, version=2))
        assert [c["pointer"] for c in changes] == ["/stages/4"]
        assert changes[0]["before"] is None
        assert "id" not in changes[0]["after"]
        assert changes[0]["after"]["stage_order"] == 5

    @pytest.mark.parametrize(
        ("before", "after", "expected"),
        [
            pytest.param({"a": 1}, {"a": 1}, [], id="equal"),
            pytest.param({"a": 1}, {"a": 1.0}, [], id="int-equals-float"),
            pytest.param(
                {"a": 1}, {"a": True}, [("/a", 1, True)], id="bool-is-not-int"
            ),
            pytest.param(
                {"a": 0}, {"a": False}, [("/a", 0, False)], id="false-is-not-zero"
            ),
            pytest.param(
                {"a": 1}, {"a": "1"}, [("/a", 1, "1")], id="string-is-not-int"
            ),
            pytest.param(
                {"a": None},
                {"a": {"x": 1}},
                [("/a", None, {"x": 1})],
                id="null-to-object",
            ),
            pytest.param(
                {"a": [1]},
                {"a": {"0": 1}},
                [("/a", [1], {"0": 1})],
                id="list-to-object",
            ),
            pytest.param({"a": 1}, {}, [("/a", 1, None)], id="removed-key"),
            pytest.param({}, {"b": [1]}, [("/b", None, [1])], id="added-key"),
            pytest.param(
                {"applies_if": {"==": [{"var": "x"}, 1]}},
                {"applies_if": {"!=": [{"var": "x"}, 1]}},
                [
                    ("/applies_if/==", [{"var": "x"}, 1], None),
                    ("/applies_if/!=", None, [{"var": "x"}, 1]),
                ],
                id="operator-changed",
            ),
            pytest.param(
                {"applies_if": {"/": [1, 2]}},
                {"applies_if": {"/": [1, 3]}},
                [("/applies_if/~1/1", 2, 3)],
                id="slash-escaped",
            ),
            pytest.param(
                {"k": {"a~b": 1}},
                {"k": {"a~b": 2}},
                [("/k/a~0b", 1, 2)],
                id="tilde-escaped",
            ),
            pytest.param(
                {"l": [1, 2, 3]},
                {"l": [1]},
                [("/l/1", 2, None), ("/l/2", 3, None)],
                id="list-shrinks",
            ),
            pytest.param(
                {
                    "id": 1,
                    "version": 1,
                    "status": "draft",
                    "created_by": "a",
                    "created_at": "t",
                },
                {
                    "id": 2,
                    "version": 2,
                    "status": "active",
                    "created_by": "b",
                    "created_at": "u",
                },
                [],
                id="bookkeeping",
            ),
            pytest.param(
                {"stages": [{"id": "x", "rules": [{"id": 1}]}]},
                {"stages": [{"id": "y", "rules": [{"id": 2}]}]},
                [("/stages/0/rules/0/id", 1, 2)],
                id="only-stage-ids-ignored",
            ),
        ],
    )
    def test_leaves(
        self, before: Body, after: Body, expected: list[tuple[str, Any, Any]]
    ) -> None:
        assert diff_policies(before, after) == [
            {"pointer": pointer, "before": old, "after": new}
            for pointer, old, new in expected
        ]
