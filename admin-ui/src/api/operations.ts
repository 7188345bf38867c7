// Hooks for the operator pages (requests, tasks, deliveries, callers, delegations, audit;
// API.md "Requests", "Tasks", "Webhooks", "Delegations", "Admin reads"). Reads are queries keyed
// under `opsKeys`; writes are mutations that refresh what they change.
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";

import { api, unwrap, unwrapPage } from "./client";
import type { operations } from "./schema";

type Query<Op extends keyof operations> = NonNullable<operations[Op]["parameters"]["query"]>;
export type RequestFilters = Query<"requests-list_requests">;
export type TaskFilters = Query<"tasks-list_tasks">;
export type DeliveryFilters = Query<"webhooks-list_deliveries">;
export type AuditFilters = Query<"audit-list_audit_entries">;
export type DelegationFilters = Query<"delegations-list_delegations">;
export type DecisionAction = "approve" | "reject" | "abstain" | "request_changes";

export const opsKeys = {
  requests: ["requests"] as const,
  requestList: (f: RequestFilters) => ["requests", "list", f] as const,
  request: (id: string) => ["requests", "one", id] as const,
  events: (id: string) => ["requests", "one", id, "events"] as const,
  requestTasks: (id: string) => ["requests", "one", id, "tasks"] as const,
  requestDeliveries: (id: string) => ["requests", "one", id, "deliveries"] as const,
  stuckStages: ["requests", "stuck-stages"] as const,
  stuckDeliveries: ["requests", "stuck-deliveries"] as const,
  tasks: ["tasks"] as const,
  taskList: (f: TaskFilters) => ["tasks", "list", f] as const,
  deliveries: ["deliveries"] as const,
  deliveryList: (f: DeliveryFilters) => ["deliveries", "list", f] as const,
  attempts: (id: string) => ["deliveries", "attempts", id] as const,
  secrets: (caller: string) => ["callers", caller, "secrets"] as const,
  clients: ["directory", "clients"] as const,
  users: ["directory", "users"] as const,
  delegations: ["delegations"] as const,
  delegationList: (f: DelegationFilters) => ["delegations", "list", f] as const,
  audit: (f: AuditFilters) => ["audit", f] as const,
};

// ---- requests -------------------------------------------------------------------------------

export function useRequests(filters: RequestFilters) {
  return useQuery({
    queryKey: opsKeys.requestList(filters),
    queryFn: () => unwrapPage(api.GET("/v1/requests", { params: { query: filters } })),
    placeholderData: keepPreviousData,
  });
}

/** Why requests are stuck: stages waiting for resolution and exhausted deliveries (operators). */
export function useStuckReasons(enabled: boolean) {
  const stages = useQuery({
    queryKey: opsKeys.stuckStages,
    queryFn: () => unwrap(api.GET("/v1/admin/stages", { params: { query: { status: "resolving", limit: 500 } } })),
    enabled,
  });
  const deliveries = useQuery({
    queryKey: opsKeys.stuckDeliveries,
    queryFn: () =>
      unwrap(api.GET("/v1/admin/deliveries", { params: { query: { status: "exhausted", limit: 500 } } })),
    enabled,
  });
  return { stages, deliveries };
}

export function useRequest(id: string) {
  return useQuery({
    queryKey: opsKeys.request(id),
    queryFn: () => unwrap(api.GET("/v1/requests/{request_id}", { params: { path: { request_id: id } } })),
  });
}

export function useRequestEvents(id: string) {
  return useQuery({
    queryKey: opsKeys.events(id),
    queryFn: () => unwrap(api.GET("/v1/requests/{request_id}/events", { params: { path: { request_id: id } } })),
  });
}

/** Every task of one request (assignee=*&request_id: what the principal may see of it). */
export function useRequestTasks(id: string) {
  return useQuery({
    queryKey: opsKeys.requestTasks(id),
    queryFn: () =>
      unwrap(
        api.GET("/v1/tasks", { params: { query: { assignee: "*", request_id: id, page_size: 100 } } }),
      ),
  });
}

export function useRequestDeliveries(id: string, enabled: boolean) {
  return useQuery({
    queryKey: opsKeys.requestDeliveries(id),
    queryFn: () =>
      unwrap(api.GET("/v1/admin/deliveries", { params: { query: { request_id: id, limit: 500 } } })),
    enabled,
    refetchInterval: (q) => pendingPoll(q.state.data),
  });
}

export function useVerifyChain(id: string) {
  return useMutation({
    mutationFn: () =>
      unwrap(api.GET("/v1/requests/{request_id}/events/verify", { params: { path: { request_id: id } } })),
  });
}

export function useDiagramLink(id: string) {
  return useMutation({
    mutationFn: () =>
      unwrap(api.POST("/v1/requests/{request_id}/diagram-link", { params: { path: { request_id: id } } })),
  });
}

/** The evidence bundle as the service sent it (exact bytes, so its hashes can be checked). */
export function useEvidence(id: string) {
  return useMutation({
    mutationFn: () =>
      unwrap(
        api.GET("/v1/requests/{request_id}/evidence", {
          params: { path: { request_id: id } },
          parseAs: "blob",
        }),
      ) as Promise<Blob>,
  });
}

function useInvalidateRequest(id: string) {
  const queryClient = useQueryClient();
  return () =>
    Promise.all([
      queryClient.invalidateQueries({ queryKey: opsKeys.request(id) }),
      queryClient.invalidateQueries({ queryKey: ["requests", "list"] }),
      queryClient.invalidateQueries({ queryKey: opsKeys.tasks }),
    ]);
}

export function useCancelRequest(id: string) {
  const invalidate = useInvalidateRequest(id);
  return useMutation({
    mutationFn: (reason: string | null) =>
      unwrap(api.POST("/v1/requests/{request_id}/cancel", { params: { path: { request_id: id } }, body: { reason } })),
    onSuccess: invalidate,
  });
}

export function useReassign(requestId: string) {
  const invalidate = useInvalidateRequest(requestId);
  return useMutation({
    mutationFn: ({ taskId, newAssignee, reason }: { taskId: string; newAssignee: string; reason: string | null }) =>
      unwrap(
        api.POST("/v1/tasks/{task_id}/reassign", {
          params: { path: { task_id: taskId } },
          body: { new_assignee: newAssignee, reason },
        }),
      ),
    onSuccess: invalidate,
  });
}

// ---- tasks ----------------------------------------------------------------------------------

export function useTasks(filters: TaskFilters) {
  return useQuery({
    queryKey: opsKeys.taskList(filters),
    queryFn: () => unwrap(api.GET("/v1/tasks", { params: { query: filters } })),
    placeholderData: keepPreviousData,
  });
}

export function useDecide() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: ({ taskId, action, comment }: { taskId: string; action: DecisionAction; comment: string | null }) =>
      unwrap(
        api.POST("/v1/tasks/{task_id}/decision", {
          params: { path: { task_id: taskId } },
          body: { action, comment },
        }),
      ),
    onSuccess: (decision) =>
      Promise.all([
        queryClient.invalidateQueries({ queryKey: opsKeys.tasks }),
        queryClient.invalidateQueries({ queryKey: opsKeys.request(decision.request_id) }),
      ]),
  });
}

// ---- deliveries -----------------------------------------------------------------------------

/**
 * While a shown delivery is pending (just created, or re-queued by Retry), look again every few
 * seconds, so the operator sees it go through (or fail again) without reloading.
 */
export const PENDING_POLL_MS = 3000;
function pendingPoll(rows: { status: string }[] | undefined): number | false {
  return rows?.some((d) => d.status === "pending") ? PENDING_POLL_MS : false;
}

export function useDeliveries(filters: DeliveryFilters) {
  return useQuery({
    queryKey: opsKeys.deliveryList(filters),
    queryFn: () => unwrapPage(api.GET("/v1/admin/deliveries", { params: { query: filters } })),
    placeholderData: keepPreviousData,
    refetchInterval: (q) => pendingPoll(q.state.data?.items),
  });
}

/** `version` (the delivery's last attempt time) changes with every attempt: the list refetches then. */
export function useAttempts(id: string, version: string | null = null, enabled = true) {
  return useQuery({
    queryKey: [...opsKeys.attempts(id), version],
    queryFn: () =>
      unwrap(api.GET("/v1/admin/deliveries/{delivery_id}/attempts", { params: { path: { delivery_id: id } } })),
    enabled,
  });
}

function useInvalidateDeliveries() {
  const queryClient = useQueryClient();
  return () =>
    Promise.all([
      queryClient.invalidateQueries({ queryKey: opsKeys.deliveries }),
      queryClient.invalidateQueries({ queryKey: opsKeys.requests }),
    ]);
}

export function useRetryDelivery() {
  const invalidate = useInvalidateDeliveries();
  return useMutation({
    mutationFn: (id: string) =>
      unwrap(api.POST("/v1/admin/deliveries/{delivery_id}/retry", { params: { path: { delivery_id: id } } })),
    onSuccess: invalidate,
  });
}

type MatchFilters = Pick<DeliveryFilters, "request_id" | "event_type" | "url">;

/** How many exhausted deliveries match the filters (every page, so the confirmation is exact). */
export async function countExhausted(filters: MatchFilters): Promise<number> {
  let count = 0;
  let cursor: string | undefined;
  for (let i = 0; i < 100; i++) {
    const page = await unwrapPage(
      api.GET("/v1/admin/deliveries", { params: { query: { ...filters, status: "exhausted", limit: 500, cursor } } }),
    );
    count += page.items.length;
    if (!page.nextCursor) break;
    cursor = page.nextCursor;
  }
  return count;
}

/** `Retry all matching`: every exhausted delivery matching the list filters, whenever created. */
export function useRecover() {
  const invalidate = useInvalidateDeliveries();
  return useMutation({
    mutationFn: (filters: MatchFilters) =>
      unwrap(
        api.POST("/v1/admin/deliveries/recover", {
          body: {
            since: "1970-01-01T00:00:00Z",
            // A minute ahead: the service's clock may run a little ahead of this browser's.
            until: new Date(Date.now() + 60_000).toISOString(),
            request_id: filters.request_id ?? null,
            event_type: filters.event_type ?? null,
            url: filters.url ?? null,
          },
        }),
      ),
    onSuccess: invalidate,
  });
}

// ---- callers and secrets --------------------------------------------------------------------

export function useClients(enabled: boolean) {
  return useQuery({
    queryKey: opsKeys.clients,
    queryFn: () => unwrap(api.GET("/v1/admin/directory/clients")),
    enabled,
    staleTime: 60_000,
  });
}

export function useDirectoryUsers(enabled: boolean) {
  return useQuery({
    queryKey: opsKeys.users,
    queryFn: () => unwrap(api.GET("/v1/admin/directory/users", { params: { query: {} } })),
    enabled,
    staleTime: 60_000,
  });
}

export function useSecrets(caller: string) {
  return useQuery({
    queryKey: opsKeys.secrets(caller),
    queryFn: () => unwrap(api.GET("/v1/admin/callers/{caller}/secrets", { params: { path: { caller } } })),
    enabled: caller !== "",
  });
}

function useInvalidateSecrets(caller: string) {
  const queryClient = useQueryClient();
  return () => queryClient.invalidateQueries({ queryKey: opsKeys.secrets(caller) });
}

export function useCreateSecret(caller: string) {
  const invalidate = useInvalidateSecrets(caller);
  return useMutation({
    mutationFn: (body: { subscribe_decisions: boolean }) =>
      unwrap(api.POST("/v1/admin/callers/{caller}/secrets", { params: { path: { caller } }, body })),
    onSuccess: invalidate,
  });
}

export function useRotateSecret(caller: string) {
  const invalidate = useInvalidateSecrets(caller);
  return useMutation({
    mutationFn: ({ id, graceHours }: { id: string; graceHours: number }) =>
      unwrap(
        api.POST("/v1/admin/secrets/{secret_id}/rotate", {
          params: { path: { secret_id: id } },
          body: { grace_hours: graceHours },
        }),
      ),
    onSuccess: invalidate,
  });
}

export function useRevokeSecret(caller: string) {
  const invalidate = useInvalidateSecrets(caller);
  return useMutation({
    mutationFn: (id: string) =>
      unwrap(api.POST("/v1/admin/secrets/{secret_id}/revoke", { params: { path: { secret_id: id } } })),
    onSuccess: invalidate,
  });
}

// ---- delegations ----------------------------------------------------------------------------

export function useDelegations(filters: DelegationFilters) {
  return useQuery({
    queryKey: opsKeys.delegationList(filters),
    queryFn: () => unwrapPage(api.GET("/v1/delegations", { params: { query: filters } })),
    placeholderData: keepPreviousData,
  });
}

export interface DelegationInput {
  user_id: string | null;
  delegate_to: string;
  starts_at: string;
  ends_at: string;
  reason: string | null;
}

export function useCreateDelegation() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: (body: DelegationInput) => unwrap(api.POST("/v1/delegations", { body })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: opsKeys.delegations }),
  });
}

export function useDeleteDelegation() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: (id: string) =>
      unwrap(api.DELETE("/v1/delegations/{delegation_id}", { params: { path: { delegation_id: id } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: opsKeys.delegations }),
  });
}

// ---- audit ----------------------------------------------------------------------------------

export function useAudit(filters: AuditFilters) {
  return useQuery({
    queryKey: opsKeys.audit(filters),
    queryFn: () => unwrapPage(api.GET("/v1/admin/audit", { params: { query: filters } })),
    placeholderData: keepPreviousData,
  });
}
