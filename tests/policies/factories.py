"""Builders of valid policy bodies (`PolicyIn` dicts) for HTTP tests.

Every builder returns a fresh dict, valid as it stands; tests override only what they are about:
`policy_body(policy_key="k", stages=[stage(name="Directors", rules=[role_rule("director")])])`.
"""

from __future__ import annotations

from typing import Any

import httpx

Body = dict[str, Any]

DEFAULT_KEY = "registry.change_request"


def user_rule(user_id: str, **overrides: Any) -> Body:
    return {"rule_type": "user", "rule_value": {"user_id": user_id}, **overrides}


def role_rule(role: str, client: str | None = None, **overrides: Any) -> Body:
    value: Body = {"role": role}
    if client is not None:
        value["client"] = client
    return {"rule_type": "role", "rule_value": value, **overrides}


def group_rule(group: str, **overrides: Any) -> Body:
    return {"rule_type": "group", "rule_value": {"group": group}, **overrides}


def expression_rule(logic: Any, **overrides: Any) -> Body:
    return {"rule_type": "expression", "rule_value": {"logic": logic}, **overrides}


def stage(**overrides: Any) -> Body:
    """One `any-n` stage approved by the user `alice` unless overridden."""
    body: Body = {
        "stage_order": 1,
        "name": "District officers",
        "mode": "any-n",
        "mode_value": 1,
        "veto": None,
        "parallel_group": None,
        "skip_if": None,
        "on_empty": "block",
        "sla_hours": None,
        "on_breach": None,
        "escalation_rules": [],
        "reminder_hours": None,
        "rules": [user_rule("alice")],
    }
    body.update(overrides)
    return body


def policy_body(**overrides: Any) -> Body:
    """A valid one-stage policy; keyword arguments replace top-level fields."""
    body: Body = {
        "policy_key": DEFAULT_KEY,
        "name": "Change request approval",
        "description": "Approval of registry change requests",
        "artifact_type": "registry.change_request",
        "forbid_self_approval": True,
        "forbid_repeat_approvers": False,
        "allow_request_changes": True,
        "request_ttl_hours": None,
        "applies_if": None,
        "priority": 0,
        "stages": [stage()],
    }
    body.update(overrides)
    return body


def two_stage_body(**overrides: Any) -> Body:
    """The contract's example shape: district officers (group), then a director (role) with an SLA."""
    return policy_body(
        stages=[
            stage(
                stage_order=1,
                name="District officers",
                skip_if={"<": [{"var": "amount"}, 100]},
                sla_hours=72,
                on_breach="escalate",
                escalation_rules=[
                    {"rule_type": "user", "rule_value": {"user_id": "carol"}}
                ],
                reminder_hours=24,
                rules=[group_rule("/districts/D1")],
            ),
            stage(
                stage_order=2,
                name="Director sign-off",
                mode="all",
                mode_value=None,
                rules=[role_rule("director")],
            ),
        ],
        **overrides,
    )


# --- HTTP helpers -------------------------------------------------------------------------------

POLICIES = "/v1/policies"

# The contract's error table (API.md, "Error codes"): code -> (HTTP status, AWE errorCode).
CONTRACT_ERRORS: dict[str, tuple[int, str]] = {
    "unauthenticated": (401, "AWE-008"),
    "forbidden": (403, "AWE-008"),
    "policy_not_found": (404, "AWE-001"),
    "policy_exists": (409, "AWE-002"),
    "invalid_state": (409, "AWE-007"),
    "policy_key_mismatch": (400, "AWE-010"),
    "validation_failed": (422, "AWE-010"),
    "policy_invalid": (422, "AWE-010"),
    "rule_unsafe": (422, "AWE-010"),
}

PROBLEM_MEDIA_TYPE = "application/problem+json"


def expect_problem(response: httpx.Response, code: str) -> Body:
    """Assert `response` is the contract's problem for `code`; return its body."""
    status, awe_code = CONTRACT_ERRORS[code]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    problem: Body = response.json()
    assert problem["type"] == f"https://countersign.dev/problems/{code}"
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["errorCode"] == awe_code
    assert problem["message"] == problem["detail"]
    assert problem["instance"] == response.request.url.path
    assert isinstance(problem["errors"], list)
    assert problem["errors"]
    return problem


def pointers(problem: Body) -> list[str]:
    return [entry["pointer"] for entry in problem["errors"]]


async def create_policy(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    body: Body | None = None,
    *,
    base: str = POLICIES,
) -> Body:
    response = await client.post(base, json=body or policy_body(), headers=headers)
    assert response.status_code == 201, response.text
    created: Body = response.json()
    return created


async def add_version(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    body: Body | None = None,
    *,
    base: str = POLICIES,
) -> Body:
    body = body or policy_body()
    response = await client.put(
        f"{base}/{body['policy_key']}", json=body, headers=headers
    )
    assert response.status_code == 201, response.text
    added: Body = response.json()
    return added


async def activate(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    policy_key: str,
    version: int,
    *,
    base: str = POLICIES,
) -> Body:
    response = await client.post(
        f"{base}/{policy_key}/versions/{version}/activate", headers=headers
    )
    assert response.status_code == 200, response.text
    activated: Body = response.json()
    return activated
