// Bodies shaped like the service's (API.md RequestOut, TaskOut, EventOut, DeliveryOut...) for the
// operator page tests.
import type { DeliveryOut, EventOut, RequestOut, TaskOut } from "../api/schema";

export const REQUEST_ID = "6f1c2b9e-1111-4aaa-8bbb-000000000001";
export const TASK_ID = "7a2d3c0f-2222-4aaa-8bbb-000000000002";
export const DELIVERY_ID = "8b3e4d1a-3333-4aaa-8bbb-000000000003";

export function request(over: Partial<RequestOut> = {}): RequestOut {
  return {
    id: REQUEST_ID,
    policy_id: "0b6a2a70-0000-4000-8000-000000000001",
    policy_key: "registry.change_request",
    policy_version: 3,
    artifact_type: "registry.change_request",
    artifact_id: "cr-42",
    source_service: "registry",
    source_client: "registry",
    requester: "rita",
    context: { district: "D1", amount: 500 },
    metadata: {},
    status: "in_review",
    outcome_reason: null,
    current_stage_order: 2,
    callback_url: "http://127.0.0.1:9/callback",
    callback_secret_id: null,
    cycle: 1,
    exhausted_deliveries: 0,
    completed_at: null,
    created_at: "2026-12-07T10:00:00Z",
    updated_at: "2026-12-07T10:05:00Z",
    stages: [
      { stage_order: 1, name: "District officers", parallel_group: null, status: "approved", mode: "any-n", mode_value: 1, due_at: null, resolution_error: null, next_resolution_at: null, counts: { approve: 1, reject: 0, abstain: 0, open: 0 } },
      { stage_order: 2, name: "Director", parallel_group: null, status: "active", mode: "all", mode_value: null, due_at: "2026-12-10T10:00:00Z", resolution_error: null, next_resolution_at: null, counts: { approve: 0, reject: 0, abstain: 0, open: 1 } },
    ],
    ...over,
  };
}

export function task(over: Partial<TaskOut> = {}): TaskOut {
  return {
    id: TASK_ID,
    request_id: REQUEST_ID,
    stage_order: 2,
    kind: "approver",
    assignee: "carol",
    delegated_from: null,
    reassigned_from: null,
    status: "open",
    due_at: "2026-12-10T10:00:00Z",
    claimed_at: null,
    completed_at: null,
    decision_action: null,
    decision_comment: null,
    created_at: "2026-12-07T10:05:00Z",
    artifact_type: "registry.change_request",
    artifact_id: "cr-42",
    policy_key: "registry.change_request",
    context: { district: "D1", amount: 500 },
    ...over,
  };
}

export function taskPage(items: TaskOut[], over: Record<string, unknown> = {}) {
  return { items, total: items.length, page: 1, page_size: 10, pages: 1, next_cursor: null, ...over };
}

export function event(sequence: number, event_type: string, payload: Record<string, unknown> = {}): EventOut {
  return {
    id: `9c4f5e2b-4444-4aaa-8bbb-${String(sequence).padStart(12, "0")}`,
    request_id: REQUEST_ID,
    sequence,
    event_type,
    actor: "registry",
    payload,
    created_at: `2026-12-07T10:0${sequence}:00.000000Z`,
    prev_hash: "0".repeat(64),
    hash: String(sequence).repeat(64).slice(0, 64),
  };
}

export function delivery(over: Partial<DeliveryOut> = {}): DeliveryOut {
  return {
    id: DELIVERY_ID,
    event_id: "9c4f5e2b-4444-4aaa-8bbb-000000000001",
    request_id: REQUEST_ID,
    event_type: "request_created",
    sequence: 1,
    url: "http://127.0.0.1:9/callback",
    status: "exhausted",
    attempt: 1,
    next_attempt_at: null,
    last_attempt_at: "2026-12-07T10:01:00Z",
    last_status_code: 410,
    last_error: "HTTP 410: gone for good", // the service's shape: "HTTP <code>", then ": <start of the body>"
    created_at: "2026-12-07T10:00:00Z",
    updated_at: "2026-12-07T10:01:00Z",
    ...over,
  };
}
