// Operations the UI needs that the service's OpenAPI document does not declare yet (UI.md's
// additions being built alongside this UI). Merged into the generated `paths` so calls still go
// through the one typed client; delete an entry once `make client` brings it in.
import type { operations, paths } from "./schema";

interface DevTokenOperation {
  parameters: { query?: never; header?: never; path?: never; cookie?: never };
  requestBody: { content: { "application/json": { sub: string; roles: string[]; azp?: string | null } } };
  responses: {
    200: { headers: Record<string, unknown>; content: { "application/json": { access_token: string; expires_at: string } } };
    201: { headers: Record<string, unknown>; content: { "application/json": { access_token: string; expires_at: string } } };
    404: { headers: Record<string, unknown>; content: { "application/problem+json": unknown } };
  };
}

type Missing<P extends string, T> = P extends keyof paths ? Record<never, never> : T;

export type PendingPaths = Missing<
  "/v1/dev/token",
  { "/v1/dev/token": { parameters: DevTokenOperation["parameters"]; post: DevTokenOperation } }
>;

export type AllPaths = paths & PendingPaths;
export type { operations };
