"""The one place where Countersign evaluates JSONLogic (`expression` rules, `skip_if`, `applies_if`).

Why a guard around the library: json-logic-qubit ships operations that are not part of JSONLogic and
that run Python code chosen by the rule author. `{"method": ["abc", "upper"]}` calls `str.upper`
via `getattr`, and an operator spelled with dots (`"a.b.c"`) walks attributes of registered custom
operations. Policies are written by admins but stored in a database and evaluated by the worker, so
a rule must be unable to do anything but compute a value from its data, whoever wrote the row.

The guard is an allowlist checked on the rule itself, before the library ever sees it: every
operation name in the rule must be one of `ALLOWED_OPERATORS`. We deliberately never ask the
library which operations exist (`json_logic.operations`): that table contains `method`, `log`,
`filter`/`map`/`reduce`, `count` and anything registered with `add_operation`, so "known to the
library" is exactly the wrong test. Nothing outside the allowlist can reach the library's
dispatcher, under any spelling.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

import json_logic

from countersign.errors import FieldProblem, RuleEvaluationError, RuleUnsafe

ALLOWED_OPERATORS: Final[frozenset[str]] = frozenset(
    {
        "==", "!=", "===", "!==", "<", "<=", ">", ">=", "!", "!!",
        "and", "or", "if", "?:", "in", "cat", "substr",
        "+", "-", "*", "/", "%", "min", "max",
        "var", "missing", "missing_some",
        "all", "some", "none", "merge",
    }
)  # fmt: skip

MAX_DEPTH: Final = 32
MAX_NODES: Final = 1000
# Evaluation budget. A 1000-node rule can still do a lot of work on its data: `some`/`all` over a
# large context list (nested, that is quadratic), `cat`/`merge` of big values again and again.
# Evaluation runs on the event loop (or a worker's), so it is bounded in steps (one step = one
# node evaluated, once per list item inside `all`/`some`/`none`) and in the size of every value
# it builds (characters of a string, items of a list). Over either bound the rule fails like any
# rule that does not work on its data (ADR 0010: `rule_evaluation_failed`).
MAX_EVALUATION_STEPS: Final = 50_000
MAX_VALUE_SIZE: Final = 100_000

# The request's own fields, exposed to rules under `_request` (API.md, "Policies").
REQUEST_FIELDS: Final = ("requester", "artifact_type", "artifact_id", "policy_key")

_JSON_SCALARS: Final = (str, int, float, bool, type(None))


def _escape(token: str) -> str:
    """Escape one JSON pointer reference token (RFC 6901): `~` → `~0`, `/` → `~1`."""
    return token.replace("~", "~0").replace("/", "~1")


def _trusted_dispatch() -> dict[str, Callable[..., Any]]:
    """The library functions behind each allowlisted operator, captured once at import."""
    return {name: json_logic.operations[name] for name in ALLOWED_OPERATORS}


# Defence in depth for the allowlist: the library dispatches *custom* operations before its
# built-in ones, so `json_logic.add_operation("cat", something)` anywhere in the process would
# silently re-route an allowlisted name to arbitrary code. Evaluation refuses to run if the
# library's table no longer maps every allowlisted name to the function it had at import.
_TRUSTED: Final = _trusted_dispatch()


class BudgetExceeded(Exception):
    """A rule used more than its evaluation budget (`MAX_EVALUATION_STEPS`, `MAX_VALUE_SIZE`)."""


@dataclass
class _Budget:
    steps: int = MAX_EVALUATION_STEPS
    size: int = MAX_VALUE_SIZE

    def spend(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise BudgetExceeded(
                f"rule evaluation took more than {MAX_EVALUATION_STEPS} steps"
            )

    def check_size(self, value: Any) -> None:
        if isinstance(value, str | list | tuple) and len(value) > self.size:
            raise BudgetExceeded(
                f"rule evaluation built a value of {len(value)} "
                f"{'characters' if isinstance(value, str) else 'items'} "
                f"(at most {self.size})"
            )


# One budget per evaluation; a context variable, so concurrent evaluations (tasks, threads) each
# spend their own.
_budget: ContextVar[_Budget | None] = ContextVar("jsonlogic_budget", default=None)
_library_json_logic: Final = json_logic.jsonLogic
# Operations whose result is a concatenation of their evaluated arguments: the arguments are
# measured before the library concatenates them, so the value is never built.
_CONCATENATING: Final = {"cat": str, "merge": list}


def _budgeted_json_logic(logic: Any, data: Any = None) -> Any:
    """The library's `jsonLogic`, charged to the current budget. The library recurses through the
    module attribute `json_logic.jsonLogic`, which is this function, so every node it evaluates,
    however deep or however often (`all`/`some` per item), passes here."""
    budget = _budget.get()
    if budget is None:
        return _library_json_logic(logic, data)
    budget.spend()
    if isinstance(logic, dict) and len(logic) == 1:
        ((operator, args),) = logic.items()
        if operator in _CONCATENATING:
            values = [
                _budgeted_json_logic(arg, data)
                for arg in (args if isinstance(args, list | tuple) else [args])
            ]
            total = sum(
                len(v) if isinstance(v, str | list | tuple) else len(str(v))
                for v in values
            )
            if total > budget.size:
                raise BudgetExceeded(
                    f"{operator!r} would build a value of {total} "
                    f"{'characters' if operator == 'cat' else 'items'} (at most {budget.size})"
                )
            # The library's own function for the operator, as its dispatcher would call it.
            result = _TRUSTED[operator](*values)
            budget.check_size(result)
            return result
    result = _library_json_logic(logic, data)
    budget.check_size(result)
    return result


json_logic.jsonLogic = _budgeted_json_logic


def _library_tampered() -> list[str]:
    current: Mapping[str, Any] = json_logic.operations
    custom: Any = getattr(json_logic, "_custom_operations", {})
    tampered = sorted(
        name
        for name in ALLOWED_OPERATORS
        if current.get(name) is not _TRUSTED[name]
        or (isinstance(custom, dict) and name in custom)
    )
    if json_logic.jsonLogic is not _budgeted_json_logic:
        tampered.append("jsonLogic")
    return tampered


class RuleEvaluator:
    """Checks JSONLogic against the allowlist and limits, and evaluates it only when it passes.

    Node and depth, as counted here: a node is an operation (`{"op": args}`), a literal list, or a
    scalar. An operation's argument list is part of the operation, not a node of its own (so
    `{"==": [1, 2]}` is 3 nodes, depth 2), which mirrors how deep the library recurses. Depth is
    the number of nodes on the longest path from the root, the root included (a bare scalar has
    depth 1).
    """

    allowed_operators: Final = ALLOWED_OPERATORS
    max_depth: Final = MAX_DEPTH
    max_nodes: Final = MAX_NODES

    def check(self, logic: Any, pointer: str) -> list[FieldProblem]:
        """Return every problem of `logic` (at JSON pointer `pointer`); empty means safe."""
        problems: list[FieldProblem] = []
        # Explicit stack instead of recursion: a hostile 100000-deep rule must not exhaust the
        # Python stack here, and each node is visited at most once, so the walk is bounded by
        # MAX_NODES + 1 visits (plus one list push per container) before it gives up.
        stack: list[tuple[Any, str, int]] = [(logic, pointer, 1)]
        nodes = 0
        depth_reported = False
        while stack:
            node, at, depth = stack.pop()
            nodes += 1
            if nodes > self.max_nodes:
                problems.append(
                    FieldProblem(pointer, f"rule has more than {self.max_nodes} nodes")
                )
                break
            if depth > self.max_depth:
                # One problem is enough: a too-deep rule is usually too deep along one spine.
                if not depth_reported:
                    problems.append(
                        FieldProblem(
                            at, f"rule is nested deeper than {self.max_depth} levels"
                        )
                    )
                    depth_reported = True
                continue
            children: list[tuple[Any, str]]
            if isinstance(node, dict):
                if len(node) != 1:
                    problems.append(
                        FieldProblem(
                            at,
                            f"an operation must be an object with exactly one key, not {len(node)}",
                        )
                    )
                    continue
                ((operator, args),) = node.items()
                if (
                    not isinstance(operator, str)
                    or operator not in self.allowed_operators
                ):
                    problems.append(
                        FieldProblem(at, f"operator {str(operator)!r} is not allowed")
                    )
                    continue
                op_at = f"{at}/{_escape(operator)}"
                if isinstance(args, list | tuple):
                    children = [(arg, f"{op_at}/{i}") for i, arg in enumerate(args)]
                else:
                    children = [(args, op_at)]
            elif isinstance(node, list | tuple):
                children = [(item, f"{at}/{i}") for i, item in enumerate(node)]
            elif isinstance(node, _JSON_SCALARS):
                continue
            else:
                # Rules come from JSON; anything else was put there by code and has methods the
                # library could be tricked into using, so refuse it rather than guess.
                problems.append(
                    FieldProblem(at, f"{type(node).__name__} is not a JSON value")
                )
                continue
            if nodes + len(stack) + len(children) > self.max_nodes:
                problems.append(
                    FieldProblem(pointer, f"rule has more than {self.max_nodes} nodes")
                )
                break
            # Reversed so that problems come out in document order.
            stack.extend(
                (child, child_at, depth + 1) for child, child_at in reversed(children)
            )
        return problems

    def evaluate(
        self, logic: Any, data: Mapping[str, Any], *, pointer: str = ""
    ) -> Any:
        """Evaluate `logic` over `data`; the rule is checked first, every time.

        Checking at evaluation as well as at save time means a rule that never went through
        `validate_policy` (a row edited in the database, an old version saved under looser rules)
        still cannot run anything outside the allowlist.

        Raises:
            RuleUnsafe: the rule fails `check`.
            RuleEvaluationError: the library raised while evaluating (bad types, division by zero...).
        """
        problems = self.check(logic, pointer)
        if problems:
            raise RuleUnsafe(
                f"JSONLogic rule at {pointer or '/'} is not allowed", problems
            )
        tampered = _library_tampered()
        if tampered:
            # A programming error inside this process, not a problem with the rule: let it be a 500.
            raise RuntimeError(
                f"json_logic operations were overridden: {', '.join(tampered)}; refusing to evaluate"
            )
        token = _budget.set(_Budget())
        try:
            return json_logic.jsonLogic(logic, dict(data))
        # The library raises whatever Python raises (TypeError, ZeroDivisionError, ValueError,
        # RecursionError...); every one of them means "this rule does not work on this data".
        except Exception as exc:
            detail = f"JSONLogic rule failed: {type(exc).__name__}: {exc}"
            raise RuleEvaluationError(
                f"JSONLogic rule at {pointer or '/'} could not be evaluated: {type(exc).__name__}: {exc}",
                [FieldProblem(pointer, detail)],
            ) from exc
        finally:
            _budget.reset(token)

    @staticmethod
    def is_truthy(value: Any) -> bool:
        """JSONLogic truthiness: falsy are 0, NaN, "", [], null and false; everything else is truthy.

        This is the spec's (JavaScript's) table, not Python's: an empty object is truthy here, as in
        JavaScript, while Python (and the library's internal `if`/`!!`) would call it falsy.
        """
        if value is None or value is False:
            return False
        if isinstance(value, bool):
            return True
        if isinstance(value, int | float):
            return not (value == 0 or (isinstance(value, float) and math.isnan(value)))
        if isinstance(value, str | list | tuple):
            return len(value) > 0
        return True


def rule_data(
    context: Mapping[str, Any], request_fields: Mapping[str, Any]
) -> dict[str, Any]:
    """The data JSONLogic rules see: the request context with the request's fields under `_request`.

    Only the contract's four fields are copied (missing ones are null). A `_request` key sent in the
    context is replaced, so a caller cannot impersonate another requester to a rule.
    """
    data = dict(context)
    data["_request"] = {name: request_fields.get(name) for name in REQUEST_FIELDS}
    return data
