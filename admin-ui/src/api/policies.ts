// Policy hooks (API.md "Policies"): reads are queries, writes are mutations that refresh the
// policy's queries when they succeed.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";

import { api, unwrap } from "./client";
import type { PolicyIn, PolicyOut, SimulateIn } from "./schema";

export const policyKeys = {
  all: ["policies"] as const,
  list: () => ["policies", "list"] as const,
  policy: (key: string) => ["policies", "key", key] as const,
  versions: (key: string) => ["policies", "key", key, "versions"] as const,
  version: (key: string, version: number) => ["policies", "key", key, "version", version] as const,
  diff: (key: string, a: number, b: number) => ["policies", "key", key, "diff", a, b] as const,
};

export function usePolicies() {
  return useQuery({
    queryKey: policyKeys.list(),
    queryFn: () => unwrap(api.GET("/v1/policies")),
  });
}

export function usePolicyVersions(key: string) {
  return useQuery({
    queryKey: policyKeys.versions(key),
    queryFn: () => unwrap(api.GET("/v1/policies/{policy_key}/versions", { params: { path: { policy_key: key } } })),
  });
}

export function usePolicyVersion(key: string, version: number | undefined) {
  return useQuery({
    queryKey: policyKeys.version(key, version ?? 0),
    queryFn: () =>
      unwrap(
        api.GET("/v1/policies/{policy_key}/versions/{version}", {
          params: { path: { policy_key: key, version: version ?? 0 } },
        }),
      ),
    enabled: version !== undefined && version > 0,
  });
}

export function usePolicyDiff(key: string, a: number | undefined, b: number | undefined) {
  return useQuery({
    queryKey: policyKeys.diff(key, a ?? 0, b ?? 0),
    queryFn: () =>
      unwrap(
        api.GET("/v1/policies/{policy_key}/versions/{a}/diff/{b}", {
          params: { path: { policy_key: key, a: a ?? 0, b: b ?? 0 } },
        }),
      ),
    enabled: !!a && !!b && a !== b,
  });
}

function useInvalidatePolicy() {
  const queryClient = useQueryClient();
  return (policy: Pick<PolicyOut, "policy_key">) =>
    Promise.all([
      queryClient.invalidateQueries({ queryKey: policyKeys.list() }),
      queryClient.invalidateQueries({ queryKey: policyKeys.policy(policy.policy_key) }),
    ]);
}

export function useCreatePolicy() {
  const invalidate = useInvalidatePolicy();
  return useMutation({
    mutationFn: (body: PolicyIn) => unwrap(api.POST("/v1/policies", { body })),
    onSuccess: invalidate,
  });
}

/** A new draft version (latest + 1) of an existing key. */
export function useAddVersion() {
  const invalidate = useInvalidatePolicy();
  return useMutation({
    mutationFn: (body: PolicyIn) =>
      unwrap(api.PUT("/v1/policies/{policy_key}", { params: { path: { policy_key: body.policy_key } }, body })),
    onSuccess: invalidate,
  });
}

export function usePatchVersion() {
  const invalidate = useInvalidatePolicy();
  return useMutation({
    mutationFn: ({ version, body }: { version: number; body: PolicyIn }) =>
      unwrap(
        api.PATCH("/v1/policies/{policy_key}/versions/{version}", {
          params: { path: { policy_key: body.policy_key, version } },
          body,
        }),
      ),
    onSuccess: invalidate,
  });
}

export function useActivate() {
  const invalidate = useInvalidatePolicy();
  return useMutation({
    mutationFn: ({ key, version }: { key: string; version: number }) =>
      unwrap(
        api.POST("/v1/policies/{policy_key}/versions/{version}/activate", {
          params: { path: { policy_key: key, version } },
        }),
      ),
    onSuccess: invalidate,
  });
}

export function useDeactivate() {
  const invalidate = useInvalidatePolicy();
  return useMutation({
    mutationFn: ({ key, version }: { key: string; version: number }) =>
      unwrap(
        api.POST("/v1/policies/{policy_key}/versions/{version}/deactivate", {
          params: { path: { policy_key: key, version } },
        }),
      ),
    onSuccess: (_data, vars) => invalidate({ policy_key: vars.key }),
  });
}

export function useSimulate() {
  return useMutation({
    mutationFn: ({ key, version, body }: { key: string; version: number; body: SimulateIn }) =>
      unwrap(
        api.POST("/v1/policies/{policy_key}/versions/{version}/simulate", {
          params: { path: { policy_key: key, version } },
          body,
        }),
      ),
  });
}

/** Run the key's recent requests through version `version` and their pinned versions (no writes). */
export function useReplay() {
  return useMutation({
    mutationFn: ({ key, version, limit }: { key: string; version: number; limit: number }) =>
      unwrap(
        api.POST("/v1/policies/{policy_key}/versions/{version}/replay", {
          params: { path: { policy_key: key, version } },
          body: { limit },
        }),
      ),
  });
}
