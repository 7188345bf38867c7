from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import json_logic
import pytest

from countersign.errors import FieldProblem, RuleEvaluationError, RuleUnsafe
from countersign.policies.rules import (
    ALLOWED_OPERATORS,
    MAX_DEPTH,
    MAX_EVALUATION_STEPS,
    MAX_NODES,
    MAX_VALUE_SIZE,
    RuleEvaluator,
    rule_data,
)

evaluator = RuleEvaluator()


def nested_not(depth: int) -> Any:
    """A rule of exactly `depth` levels: depth-1 `!` operations around `true`, built iteratively."""
    rule: Any = True
    for _ in range(depth - 1):
        rule = {"!": rule}
    return rule


def nested_list(depth: int) -> Any:
    rule: Any = 1
    for _ in range(depth - 1):
        rule = [rule]
    return rule


class Spy:
    """A data object whose method records calls: proves refused rules never run Python code."""

    def __init__(self) -> None:
        self.calls = 0

    def upper(self) -> str:
        self.calls += 1
        return "CALLED"


# One example per allowlisted operator: (rule, data, expected result).
OPERATOR_EXAMPLES: dict[str, tuple[Any, dict[str, Any], Any]] = {
    "==": ({"==": [1, 1]}, {}, True),
    "!=": ({"!=": [1, 2]}, {}, True),
    "===": ({"===": [1, 1]}, {}, True),
    "!==": ({"!==": [1, "1"]}, {}, True),
    "<": ({"<": [1, 2]}, {}, True),
    "<=": ({"<=": [2, 2]}, {}, True),
    ">": ({">": [3, 2]}, {}, True),
    ">=": ({">=": [2, 2]}, {}, True),
    "!": ({"!": [False]}, {}, True),
    "!!": ({"!!": ["a"]}, {}, True),
    "and": ({"and": [True, "x"]}, {}, "x"),
    "or": ({"or": [False, "y"]}, {}, "y"),
    "if": ({"if": [False, 1, 2]}, {}, 2),
    "?:": ({"?:": [True, 1, 2]}, {}, 1),
    "in": ({"in": ["a", ["a", "b"]]}, {}, True),
    "cat": ({"cat": ["a", "b"]}, {}, "ab"),
    "substr": ({"substr": ["hello", 1, 3]}, {}, "ell"),
    "+": ({"+": [1, 2]}, {}, 3),
    "-": ({"-": [5, 2]}, {}, 3),
    "*": ({"*": [2, 3]}, {}, 6),
    "/": ({"/": [6, 3]}, {}, 2),
    "%": ({"%": [7, 3]}, {}, 1),
    "min": ({"min": [3, 1]}, {}, 1),
    "max": ({"max": [3, 1]}, {}, 3),
    "var": ({"var": "a.b"}, {"a": {"b": 5}}, 5),
    "missing": ({"missing": ["a", "z"]}, {"a": 1}, ["z"]),
    "missing_some": ({"missing_some": [1, ["a", "z"]]}, {"a": 1}, []),
    "all": ({"all": [[1, 2], {">": [{"var": ""}, 0]}]}, {}, True),
    "some": ({"some": [[1, 2], {">": [{"var": ""}, 1]}]}, {}, True),
    "none": ({"none": [[1, 2], {">": [{"var": ""}, 5]}]}, {}, True),
    "merge": ({"merge": [[1], 2]}, {}, [1, 2]),
}


class TestAllowlist:
    def test_allowlist_is_exactly_the_contracts(self) -> None:
        contract = (
            "== != === !== < <= > >= ! !! and or if ?: in cat substr "
            "+ - * / % min max var missing missing_some all some none merge"
        )
        assert frozenset(contract.split()) == ALLOWED_OPERATORS
        assert set(OPERATOR_EXAMPLES) == ALLOWED_OPERATORS

    @pytest.mark.parametrize(
        ("rule", "data", "expected"),
        OPERATOR_EXAMPLES.values(),
        ids=OPERATOR_EXAMPLES.keys(),
    )
    def test_every_allowlisted_operator_is_accepted_and_evaluates(
        self, rule: Any, data: dict[str, Any], expected: Any
    ) -> None:
        assert evaluator.check(rule, "/r") == []
        assert evaluator.evaluate(rule, data, pointer="/r") == expected

    @pytest.mark.parametrize(
        "rule", [True, 0, 1.5, "text", None, [], [1, "a", None], {"var": ""}]
    )
    def test_scalars_and_lists_are_fine(self, rule: Any) -> None:
        assert evaluator.check(rule, "/r") == []


class TestRefusedOperators:
    @pytest.mark.parametrize(
        ("rule", "pointer"),
        [
            pytest.param({"method": ["abc", "upper"]}, "/r", id="method"),
            pytest.param({"log": "x"}, "/r", id="log"),
            pytest.param({"filter": [[1], True]}, "/r", id="filter"),
            pytest.param({"map": [[1], 1]}, "/r", id="map"),
            pytest.param({"reduce": [[1], 1, 0]}, "/r", id="reduce"),
            pytest.param({"count": [1]}, "/r", id="count"),
            pytest.param({"json_logic.jsonLogic": [1]}, "/r", id="dotted-name"),
            pytest.param({"METHOD": ["abc", "upper"]}, "/r", id="other-case"),
            pytest.param(
                {"if": [True, {"method": ["abc", "upper"]}, 1]},
                "/r/if/1",
                id="method-in-if",
            ),
            pytest.param(
                {
                    "and": [
                        True,
                        {"or": [False, {"if": [True, {"method": ["abc", "upper"]}]}]},
                    ]
                },
                "/r/and/1/or/1/if/1",
                id="method-deep-in-if",
            ),
            pytest.param(
                {"all": [[1], {"method": [{"var": ""}, "upper"]}]},
                "/r/all/1",
                id="method-in-all-second-arg",
            ),
            pytest.param(
                {"in": ["a", [1, {"method": ["abc", "upper"]}]]},
                "/r/in/1/1",
                id="method-in-literal-list",
            ),
            pytest.param([1, {"log": 1}], "/r/1", id="log-in-root-list"),
            pytest.param({"!": {"log": 1}}, "/r/!", id="single-argument-form"),
            pytest.param({"/": [{"log": 1}, 1]}, "/r/~1/0", id="pointer-escapes-slash"),
            pytest.param(
                {"var": {"method": ["a", "upper"]}}, "/r/var", id="method-as-var-name"
            ),
        ],
    )
    def test_refused_with_pointer(self, rule: Any, pointer: str) -> None:
        problems = evaluator.check(rule, "/r")
        assert [p.pointer for p in problems] == [pointer]
        assert "not allowed" in problems[0].detail
        with pytest.raises(RuleUnsafe) as caught:
            evaluator.evaluate(rule, {}, pointer="/r")
        assert caught.value.problems == problems

    def test_method_is_never_called_even_when_evaluated_directly(self) -> None:
        spy = Spy()
        # Unchecked, the library would call spy.upper() and return "CALLED".
        assert (
            json_logic.jsonLogic({"method": [{"var": "obj"}, "upper"]}, {"obj": spy})
            == "CALLED"
        )
        spy.calls = 0

        with pytest.raises(RuleUnsafe) as caught:
            evaluator.evaluate({"method": [{"var": "obj"}, "upper"]}, {"obj": spy})
        assert spy.calls == 0
        assert caught.value.code == "rule_unsafe"

    def test_method_returning_upper_case_is_refused(self) -> None:
        # Evaluated by the library this rule returns "ABC"; here it must never get that far.
        assert json_logic.jsonLogic({"method": ["abc", "upper"]}) == "ABC"
        with pytest.raises(RuleUnsafe):
            evaluator.evaluate({"method": ["abc", "upper"]}, {})

    def test_every_refused_operator_is_reported(self) -> None:
        rule = {"and": [{"log": 1}, {"==": [1, 1]}, {"method": ["a", "upper"]}]}
        assert evaluator.check(rule, "/applies_if") == [
            FieldProblem("/applies_if/and/0", "operator 'log' is not allowed"),
            FieldProblem("/applies_if/and/2", "operator 'method' is not allowed"),
        ]

    @pytest.mark.parametrize(
        ("rule", "pointer"),
        [
            pytest.param({}, "/r", id="empty-object"),
            pytest.param({"==": [1, 1], "var": "x"}, "/r", id="two-keys"),
            pytest.param(
                {"if": [True, {"a": 1, "b": 2}]}, "/r/if/1", id="two-keys-nested"
            ),
            pytest.param({1: 2}, "/r", id="non-string-key"),
            pytest.param({"==": [object(), 1]}, "/r/==/0", id="not-a-json-value"),
        ],
    )
    def test_malformed_operations_are_refused(self, rule: Any, pointer: str) -> None:
        assert [p.pointer for p in evaluator.check(rule, "/r")] == [pointer]

    def test_operator_overridden_in_library_is_refused(self) -> None:
        # Custom operations win over built-ins in the library's dispatcher; an allowlisted name
        # re-registered anywhere in the process must not become a way in.
        calls: list[Any] = []
        json_logic.add_operation("cat", lambda *args: calls.append(args))
        try:
            with pytest.raises(RuntimeError, match="cat"):
                evaluator.evaluate({"cat": ["a", "b"]}, {})
        finally:
            json_logic.rm_operation("cat")
        assert calls == []
        assert evaluator.evaluate({"cat": ["a", "b"]}, {}) == "ab"

    def test_dotted_custom_operation_is_refused(self) -> None:
        calls: list[Any] = []
        json_logic.add_operation("tools", SimpleNamespace(run=lambda: calls.append(1)))
        try:
            with pytest.raises(RuleUnsafe):
                evaluator.evaluate({"tools.run": []}, {})
        finally:
            json_logic.rm_operation("tools")
        assert calls == []


class TestLimits:
    @pytest.mark.parametrize("build", [nested_not, nested_list])
    def test_depth_at_limit_is_accepted(self, build: Any) -> None:
        assert evaluator.check(build(MAX_DEPTH), "/r") == []

    def test_depth_at_limit_evaluates(self) -> None:
        # 31 negations of true.
        assert evaluator.evaluate(nested_not(MAX_DEPTH), {}) is False

    def test_depth_over_limit_is_refused_at_the_too_deep_node(self) -> None:
        problems = evaluator.check(nested_not(MAX_DEPTH + 1), "/r")
        assert problems == [
            FieldProblem(
                "/r" + "/!" * MAX_DEPTH,
                f"rule is nested deeper than {MAX_DEPTH} levels",
            )
        ]

    def test_list_depth_over_limit_is_refused(self) -> None:
        problems = evaluator.check(nested_list(MAX_DEPTH + 1), "/r")
        assert [p.pointer for p in problems] == ["/r" + "/0" * MAX_DEPTH]

    @pytest.mark.parametrize("build", [nested_not, nested_list])
    def test_hostile_depth_is_refused_without_recursion_error(self, build: Any) -> None:
        rule = build(100_000)
        assert len(evaluator.check(rule, "/r")) == 1
        with pytest.raises(RuleUnsafe):
            evaluator.evaluate(rule, {})

    # Nodes: each operation, literal list and scalar is one node; an operation's argument list is
    # part of the operation. So {"+": [1] * n} is 1 + n nodes, and {"in": [1, [1] * n]} is
    # 1 (in) + 1 (the scalar) + 1 (the literal list) + n.
    @pytest.mark.parametrize(
        ("rule", "ok"),
        [
            pytest.param({"+": [1] * (MAX_NODES - 1)}, True, id="flat-1000"),
            pytest.param({"+": [1] * MAX_NODES}, False, id="flat-1001"),
            pytest.param({"in": [1, [1] * (MAX_NODES - 3)]}, True, id="list-1000"),
            pytest.param({"in": [1, [1] * (MAX_NODES - 2)]}, False, id="list-1001"),
            pytest.param({"and": [{"==": [1, 1]}] * 333}, True, id="nested-1000"),
            pytest.param(
                {"and": [{"==": [1, 1]}] * 333 + [True]}, False, id="nested-1001"
            ),
            pytest.param({"+": [1] * 1_000_000}, False, id="huge"),
        ],
    )
    def test_node_limit(self, rule: Any, ok: bool) -> None:
        problems = evaluator.check(rule, "/r")
        if ok:
            assert problems == []
        else:
            assert problems == [
                FieldProblem("/r", f"rule has more than {MAX_NODES} nodes")
            ]

    def test_node_limit_rule_evaluates(self) -> None:
        assert evaluator.evaluate({"+": [1] * (MAX_NODES - 1)}, {}) == MAX_NODES - 1


class TestEvaluationErrors:
    @pytest.mark.parametrize(
        ("rule", "exception"),
        [
            pytest.param({"/": [1, 0]}, "ZeroDivisionError", id="division-by-zero"),
            pytest.param({"+": ["a", 1]}, "ValueError", id="not-a-number"),
            pytest.param({"substr": [5, 1]}, "TypeError", id="substr-of-number"),
            pytest.param({"all": [[1]]}, "TypeError", id="missing-argument"),
            pytest.param({"%": [{"var": "x"}, 2]}, "TypeError", id="null-variable"),
        ],
    )
    def test_library_exceptions_become_rule_evaluation_error(
        self, rule: Any, exception: str
    ) -> None:
        with pytest.raises(RuleEvaluationError) as caught:
            evaluator.evaluate(rule, {}, pointer="/stages/1/skip_if")
        error = caught.value
        assert "/stages/1/skip_if" in error.message
        assert exception in error.message
        assert [p.pointer for p in error.problems] == ["/stages/1/skip_if"]
        assert error.code == "validation_failed"


class TestRuleData:
    def test_request_fields_are_available_under_request(self) -> None:
        context = {"district": "D1", "amount": 500}
        data = rule_data(
            context,
            {
                "requester": "alice",
                "artifact_type": "registry.change_request",
                "artifact_id": "cr-42",
                "policy_key": "registry.change_request",
            },
        )
        assert evaluator.evaluate({"var": "_request.requester"}, data) == "alice"
        assert evaluator.evaluate({"var": "_request.artifact_id"}, data) == "cr-42"
        assert evaluator.evaluate({"var": "district"}, data) == "D1"
        rule = {
            "and": [
                {"==": [{"var": "_request.policy_key"}, "registry.change_request"]},
                {">": [{"var": "amount"}, 100]},
            ]
        }
        assert evaluator.evaluate(rule, data) is True
        assert context == {"district": "D1", "amount": 500}

    def test_context_cannot_spoof_request_fields(self) -> None:
        data = rule_data(
            {"_request": {"requester": "mallory"}}, {"requester": "alice", "x": 1}
        )
        assert data["_request"] == {
            "requester": "alice",
            "artifact_type": None,
            "artifact_id": None,
            "policy_key": None,
        }


class TestIsTruthy:
    @pytest.mark.parametrize(
        ("value", "truthy"),
        [
            (0, False),
            (0.0, False),
            (-0.0, False),
            (math.nan, False),
            ("", False),
            ([], False),
            (None, False),
            (False, False),
            (1, True),
            (-1, True),
            (0.5, True),
            ("0", True),
            ("a", True),
            ("false", True),
            ([0], True),
            (["0"], True),
            ([[]], True),
            (True, True),
            ({}, True),
            ({"a": 1}, True),
        ],
    )
    def test_jsonlogic_truthiness(self, value: Any, truthy: bool) -> None:
        assert RuleEvaluator.is_truthy(value) is truthy


class TestEvaluationBudget:
    """A rule within the size limits can still do unbounded work on its data; evaluation is
    bounded in steps and in the size of the values it builds (`rule_evaluation_failed`)."""

    def test_iterating_a_huge_list_runs_out_of_steps(self) -> None:
        rule = {"some": [{"var": "xs"}, {"==": [{"var": ""}, -1]}]}
        data = {"xs": list(range(MAX_EVALUATION_STEPS))}

        with pytest.raises(RuleEvaluationError, match="steps"):
            evaluator.evaluate(rule, data, pointer="/skip_if")

    def test_nested_iteration_is_bounded_too(self) -> None:
        # Quadratic: every item of xs walks all of xs again.
        inner = {"some": [list(range(400)), {"==": [{"var": ""}, -1]}]}
        rule = {"some": [list(range(400)), inner]}

        with pytest.raises(RuleEvaluationError, match="steps"):
            evaluator.evaluate(rule, {})

    @pytest.mark.parametrize(
        ("operator", "value"),
        [
            ("cat", "x" * (MAX_VALUE_SIZE // 10)),
            ("merge", [0] * (MAX_VALUE_SIZE // 10)),
        ],
    )
    def test_a_concatenation_over_the_size_bound_is_refused_before_it_is_built(
        self, operator: str, value: Any
    ) -> None:
        rule = {operator: [{"var": "v"}] * 11}

        with pytest.raises(RuleEvaluationError, match="would build a value"):
            evaluator.evaluate(rule, {"v": value})

    def test_nested_concatenations_are_bounded(self) -> None:
        rule: Any = {"var": "v"}
        for _ in range(8):
            rule = {"cat": [rule, rule]}  # doubles each level: 256 copies

        with pytest.raises(RuleEvaluationError, match="would build a value"):
            evaluator.evaluate(rule, {"v": "y" * 1000})

    def test_ordinary_rules_are_untouched(self) -> None:
        rule = {"some": [{"var": "xs"}, {"==": [{"var": ""}, 999]}]}

        assert evaluator.evaluate(rule, {"xs": list(range(1000))}) is True
        assert evaluator.evaluate({"cat": ["a", {"var": "b"}]}, {"b": "c"}) == "ac"
        assert evaluator.evaluate({"merge": [[1], [2, 3]]}, {}) == [1, 2, 3]

    def test_every_evaluation_gets_a_fresh_budget(self) -> None:
        rule = {"some": [{"var": "xs"}, {"==": [{"var": ""}, -1]}]}
        data = {"xs": list(range(MAX_EVALUATION_STEPS // 10))}

        for _ in range(20):  # together far over one budget
            assert evaluator.evaluate(rule, data) is False
