// Runtime configuration and sign-in calls (UI.md "API additions").
import { useMutation, useQuery } from "@tanstack/react-query";
import { z } from "zod";

import { api, unwrap } from "./client";

const configSchema = z.object({
  auth_mode: z.enum(["dev", "oidc"]).catch("dev"),
  oidc: z
    .object({
      issuer: z.string(),
      client_id: z.string(),
      scopes: z.union([z.string(), z.array(z.string())]).optional(),
    })
    .nullish(),
});

export type RuntimeConfig = z.infer<typeof configSchema>;

export function parseConfig(raw: unknown): RuntimeConfig {
  return configSchema.parse(raw ?? {});
}

export function useRuntimeConfig() {
  return useQuery({
    queryKey: ["config"],
    queryFn: async () => parseConfig(await unwrap(api.GET("/v1/config"))),
    staleTime: Infinity,
  });
}

export function useDevToken() {
  return useMutation({
    mutationFn: (body: { sub: string; roles: string[] }) =>
      unwrap(api.POST("/v1/dev/token", { body })),
  });
}
