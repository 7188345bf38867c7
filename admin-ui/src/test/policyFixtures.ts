// A stored policy version shaped like the service's PolicyOut (API.md "Policies"), for the policy
// editor, diagram and request page tests. Stage 1 escalates on breach; stage 2 has a skip
// condition; `parallelPolicy` adds two stages that run together.
import type { PolicyOut, StageOut } from "../api/schema";

export const POLICY_KEY = "registry.change_request";

export function stage(over: Partial<StageOut> & Pick<StageOut, "stage_order" | "name">): StageOut {
  return {
    id: `5d0c7a10-0000-4000-8000-${String(over.stage_order).padStart(12, "0")}`,
    mode: "any-n",
    mode_value: 1,
    veto: null,
    parallel_group: null,
    skip_if: null,
    on_empty: "block",
    sla_hours: null,
    on_breach: null,
    escalation_rules: [],
    reminder_hours: null,
    rules: [],
    ...over,
  };
}

export function policy(over: Partial<PolicyOut> = {}): PolicyOut {
  return {
    id: "0b6a2a70-0000-4000-8000-000000000001",
    policy_key: POLICY_KEY,
    version: 3,
    status: "active",
    name: "Change request approval",
    description: "Registry change requests",
    artifact_type: "registry.change_request",
    forbid_self_approval: true,
    forbid_repeat_approvers: false,
    allow_request_changes: true,
    request_ttl_hours: 240,
    applies_if: { "==": [{ var: "kind" }, "change"] },
    priority: 5,
    created_at: "2026-12-01T09:00:00Z",
    created_by: "carol",
    stages: [
      stage({
        stage_order: 1,
        name: "District officers",
        rules: [{ rule_type: "group", rule_value: { group: "/districts/D1" }, kind: "approver", required: false }],
        sla_hours: 48,
        on_breach: "escalate",
        escalation_rules: [{ rule_type: "role", rule_value: { role: "director" } }],
        reminder_hours: 24,
      }),
      stage({
        stage_order: 2,
        name: "Director",
        mode: "all",
        mode_value: null,
        veto: true,
        skip_if: { "<": [{ var: "amount" }, 100] },
        on_empty: "skip",
        sla_hours: 72,
        on_breach: "notify",
        rules: [
          { rule_type: "role", rule_value: { role: "director", client: "registry" }, kind: "approver", required: true },
          { rule_type: "user", rule_value: { user_id: "audrey" }, kind: "observer", required: false },
        ],
      }),
    ],
    ...over,
  };
}

/** Stages 2 and 3 share parallel group 1 and run side by side between stages 1 and 4. */
export function parallelPolicy(): PolicyOut {
  return policy({
    stages: [
      stage({ stage_order: 1, name: "Intake" }),
      stage({ stage_order: 2, name: "Legal", parallel_group: 1, sla_hours: 24 }),
      stage({ stage_order: 3, name: "Finance", parallel_group: 1, skip_if: { "<": [{ var: "amount" }, 100] } }),
      stage({ stage_order: 4, name: "Director", mode: "all", mode_value: null }),
    ],
  });
}
