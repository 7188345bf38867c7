// msw: the service's HTTP API as tests see it. Handlers here are the defaults every test gets;
// a test adds its own with `server.use(...)`. Unhandled requests fail the test.
import { http, HttpResponse } from "msw";
import { setupServer } from "msw/node";

export const problem = (status: number, body: Record<string, unknown>) =>
  HttpResponse.json({ status, title: "Problem", ...body }, { status, headers: { "Content-Type": "application/problem+json" } });

export const server = setupServer(
  http.get("*/v1/config", () => HttpResponse.json({
      auth_mode: "dev",
      dev_tokens: true,
      env: "development",
      oidc: null,
      role_admin: "AWE_ADMIN",
      role_viewer: "AWE_VIEWER",
      service_version: "0.0.0",
      test_hooks: false,
    })),
  // The sign-in page's user picker asks for a read-only token first.
  http.post("*/v1/dev/token", () => HttpResponse.json({ access_token: "x.e30.sig", expires_at: "2030-01-01T00:00:00Z" })),
  http.get("*/v1/admin/directory/users", () =>
    HttpResponse.json([
      { user_id: "alice", username: "alice", email: "alice@example.org", name: "Alice Officer" },
      { user_id: "carol", username: "carol", email: "carol@example.org", name: "Carol Director" },
    ]),
  ),
  http.get("*/v1/admin/directory/roles", () => HttpResponse.json([{ name: "director", description: "Final approval" }])),
  http.get("*/v1/admin/directory/groups", () => HttpResponse.json([{ path: "/districts/D1" }, { path: "/finance" }])),
  http.get("*/v1/admin/directory/clients", () => HttpResponse.json([{ client_id: "registry" }])),
);
