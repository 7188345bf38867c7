// Runtime configuration and sign-in calls (UI.md "API additions"): one build serves every
// environment because the UI asks the service how to sign in.
import { useMutation, useQuery } from "@tanstack/react-query";

import { api, unwrap } from "./client";
import type { ConfigOut, DevTokenIn } from "./schema";

export type RuntimeConfig = ConfigOut;

export function useRuntimeConfig() {
  return useQuery({
    queryKey: ["config"],
    queryFn: () => unwrap(api.GET("/v1/config")),
    staleTime: Infinity,
  });
}

/** Dev mode signs in with a self-issued token; OIDC mode goes to the identity provider. */
export function signInMethod(config: RuntimeConfig): "dev" | "oidc" | "none" {
  if (config.auth_mode === "oidc") return config.oidc ? "oidc" : "none";
  return config.dev_tokens ? "dev" : "none";
}

export function useDevToken() {
  return useMutation({
    mutationFn: (body: DevTokenIn) => unwrap(api.POST("/v1/dev/token", { body })),
  });
}
