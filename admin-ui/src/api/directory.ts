// Directory pickers for the policy editor (API.md "Admin reads"): users, roles, groups, clients.
import { keepPreviousData, useQuery } from "@tanstack/react-query";

import { api, unwrap } from "./client";

export type DirectoryKind = "users" | "roles" | "groups" | "clients";

export interface DirectoryOption {
  value: string;
  hint?: string;
}

export function useDirectory(kind: DirectoryKind, q: string, client?: string) {
  return useQuery({
    queryKey: ["directory", kind, q, client ?? ""],
    queryFn: async (): Promise<DirectoryOption[]> => {
      const query = q ? { q } : {};
      switch (kind) {
        case "users":
          return (await unwrap(api.GET("/v1/admin/directory/users", { params: { query } }))).map((u) => ({ value: u.user_id, hint: u.name ?? u.email ?? undefined }));
        case "roles":
          return (await unwrap(api.GET("/v1/admin/directory/roles", { params: { query: client ? { ...query, client } : query } }))).map((r) => ({ value: r.name, hint: r.description ?? undefined }));
        case "groups":
          return (await unwrap(api.GET("/v1/admin/directory/groups", { params: { query } }))).map((g) => ({ value: g.path, hint: g.name !== g.path ? g.name : undefined }));
        case "clients":
          return (await unwrap(api.GET("/v1/admin/directory/clients"))).map((c) => ({ value: c.client_id }));
      }
    },
    staleTime: 60_000,
    placeholderData: keepPreviousData,
  });
}
