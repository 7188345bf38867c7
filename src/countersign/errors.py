"""Application errors. HTTP-agnostic: the status is a class attribute; `kit/problem.py` renders them.

Every code of the contract's error table has one class here, so services and `domain.py` raise
`PolicyNotFound(...)` and never think about status codes or AWE codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldProblem:
    """One entry of `errors[]` for validation problems: a JSON pointer and what is wrong there."""

    pointer: str
    detail: str

    def as_dict(self, awe_code: str) -> dict[str, str]:
        return {
            "pointer": self.pointer,
            "detail": self.detail,
            "errorCode": awe_code,
            "message": self.detail,
        }


@dataclass
class AppError(Exception):
    """Base of every expected error. Unexpected ones become 500 `internal_error`."""

    message: str
    problems: list[FieldProblem] = field(default_factory=list)
    # Extra top-level members of the problem body (e.g. `request_id` for `request_already_open`).
    extra: dict[str, Any] = field(default_factory=dict)

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    awe_code: ClassVar[str] = "AWE-000"
    title: ClassVar[str] = "Internal error"

    def __post_init__(self) -> None:
        super().__init__(self.message)


class Unauthenticated(AppError):
    status_code, code, awe_code, title = (
        401,
        "unauthenticated",
        "AWE-008",
        "Unauthenticated",
    )


class Forbidden(AppError):
    status_code, code, awe_code, title = 403, "forbidden", "AWE-008", "Forbidden"


class NotFound(AppError):
    """A route or resource that does not exist (framework 404s)."""

    status_code, code, awe_code, title = 404, "not_found", "AWE-004", "Not found"


class PolicyNotFound(AppError):
    status_code, code, awe_code, title = (
        404,
        "policy_not_found",
        "AWE-001",
        "Policy not found",
    )


class PolicyExists(AppError):
    status_code, code, awe_code, title = (
        409,
        "policy_exists",
        "AWE-002",
        "Policy exists",
    )


class RequestNotFound(AppError):
    status_code, code, awe_code, title = (
        404,
        "request_not_found",
        "AWE-003",
        "Request not found",
    )


class TaskNotFound(AppError):
    status_code, code, awe_code, title = 404, "task_not_found", "AWE-004", "Not found"


class MethodNotAllowed(AppError):
    status_code, code, awe_code, title = (
        405,
        "method_not_allowed",
        "AWE-010",
        "Method not allowed",
    )


class NotReady(AppError):
    status_code, code, awe_code, title = 503, "not_ready", "AWE-005", "Not ready"


class DependencyUnavailable(AppError):
    status_code, code, awe_code, title = (
        503,
        "dependency_unavailable",
        "AWE-006",
        "Dependency unavailable",
    )


class InvalidState(AppError):
    status_code, code, awe_code, title = (
        409,
        "invalid_state",
        "AWE-007",
        "Invalid state",
    )


class IdempotencyKeyReused(AppError):
    status_code, code, awe_code, title = (
        422,
        "idempotency_key_reused",
        "AWE-009",
        "Idempotency key reused",
    )


class IdempotencyInFlight(AppError):
    status_code, code, awe_code, title = (
        409,
        "idempotency_in_flight",
        "AWE-009",
        "Idempotency key in flight",
    )


class PolicyKeyMismatch(AppError):
    status_code, code, awe_code, title = (
        400,
        "policy_key_mismatch",
        "AWE-010",
        "Policy key mismatch",
    )


class DirectoryUnavailable(AppError):
    status_code, code, awe_code, title = (
        503,
        "directory_unavailable",
        "AWE-011",
        "Directory unavailable",
    )


class ValidationFailed(AppError):
    status_code, code, awe_code, title = (
        422,
        "validation_failed",
        "AWE-010",
        "Validation failed",
    )


class PayloadTooLarge(AppError):
    """A body over `COUNTERSIGN_MAX_BODY_BYTES`, or a `context`/`metadata` over the context limit."""

    status_code, code, awe_code, title = (
        413,
        "payload_too_large",
        "AWE-010",
        "Payload too large",
    )


class PolicyInvalid(AppError):
    status_code, code, awe_code, title = (
        422,
        "policy_invalid",
        "AWE-010",
        "Policy invalid",
    )


class RequestAlreadyOpen(AppError):
    status_code, code, awe_code, title = (
        409,
        "request_already_open",
        "AWE-007",
        "Request already open",
    )


class CallbackNotAllowed(AppError):
    status_code, code, awe_code, title = (
        422,
        "callback_not_allowed",
        "AWE-010",
        "Callback not allowed",
    )


class CallbackSecretInvalid(AppError):
    status_code, code, awe_code, title = (
        422,
        "callback_secret_invalid",
        "AWE-010",
        "Callback secret invalid",
    )


class RuleUnsafe(AppError):
    status_code, code, awe_code, title = 422, "rule_unsafe", "AWE-010", "Rule unsafe"


class RuleEvaluationError(AppError):
    """A JSONLogic rule failed while evaluating (bad types, division by zero...)."""

    status_code, code, awe_code, title = (
        422,
        "validation_failed",
        "AWE-010",
        "Rule evaluation failed",
    )
