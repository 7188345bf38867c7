import { screen, waitFor, within } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { renderApp, signInAs } from "../test/render";
import { problem, server } from "../test/server";

const SECRET_ID = "1e2f3a4b-6666-4aaa-8bbb-000000000001";
const secret = (over: Record<string, unknown> = {}) => ({
  id: SECRET_ID,
  caller: "registry",
  status: "active",
  subscribe_decisions: false,
  created_at: "2026-12-01T10:00:00Z",
  rotated_at: null,
  expires_at: null,
  ...over,
});

function serve() {
  const posts: { path: string; body: unknown }[] = [];
  let rows = [secret()];
  server.use(
    http.get("*/v1/admin/callers/registry/secrets", () => HttpResponse.json(rows)),
    http.post("*/v1/admin/callers/registry/secrets", async ({ request: r }) => {
      posts.push({ path: new URL(r.url).pathname, body: await r.json() });
      return HttpResponse.json({ id: "1e2f3a4b-6666-4aaa-8bbb-000000000002", caller: "registry", secret: "whsec_NEWSECRETVALUE", status: "active", created_at: "2026-12-07T10:00:00Z" }, { status: 201 });
    }),
    http.post(`*/v1/admin/secrets/${SECRET_ID}/rotate`, async ({ request: r }) => {
      posts.push({ path: new URL(r.url).pathname, body: await r.json() });
      rows = [secret({ id: "1e2f3a4b-6666-4aaa-8bbb-000000000003" }), secret({ status: "rotated", rotated_at: "2026-12-07T10:00:00Z", expires_at: "2026-12-07T22:00:00Z" })];
      return HttpResponse.json({ id: "1e2f3a4b-6666-4aaa-8bbb-000000000003", caller: "registry", secret: "whsec_ROTATED", status: "active", created_at: "2026-12-07T10:00:00Z" }, { status: 201 });
    }),
    http.post(`*/v1/admin/secrets/${SECRET_ID}/revoke`, ({ request: r }) => {
      posts.push({ path: new URL(r.url).pathname, body: null });
      rows = [secret({ status: "revoked" })];
      return HttpResponse.json({ id: SECRET_ID, caller: "registry", status: "revoked", revoked_at: "2026-12-07T10:00:00Z" });
    }),
  );
  return posts;
}

describe("Callers", () => {
  it("asks for a caller first, and lists the chosen caller's secrets", async () => {
    signInAs("carol");
    serve();
    const { user, router } = renderApp("/callers");
    expect(await screen.findByText("Choose a caller")).toBeInTheDocument();
    await user.type(screen.getByRole("combobox", { name: /Caller id/ }), "registry");
    await user.click(screen.getByRole("button", { name: "Show secrets" }));
    await waitFor(() => expect(router.state.location.search).toMatchObject({ caller: "registry" }));
    const table = await screen.findByRole("table", { name: "Secrets" });
    expect(within(table).getByText("active")).toBeInTheDocument();
  });

  it("shows a new secret once, with a Copy button", async () => {
    signInAs("carol");
    const posts = serve();
    const { user } = renderApp("/callers?caller=registry");
    await user.click(await screen.findByRole("button", { name: "New secret" }));
    const dialog = await screen.findByRole("dialog", { name: "New secret" });
    expect(within(dialog).getByText("whsec_NEWSECRETVALUE")).toBeInTheDocument();
    expect(within(dialog).getByRole("button", { name: "Copy" })).toBeInTheDocument();
    expect(posts[0]).toEqual({ path: "/v1/admin/callers/registry/secrets", body: { subscribe_decisions: false } });
    await user.click(within(dialog).getByRole("button", { name: "Done" }));
    await waitFor(() => expect(screen.queryByText("whsec_NEWSECRETVALUE")).not.toBeInTheDocument());
  });

  it("rotates with the grace hours given and reveals the new secret", async () => {
    signInAs("carol");
    const posts = serve();
    const { user } = renderApp("/callers?caller=registry");
    const table = await screen.findByRole("table", { name: "Secrets" });
    await user.click(within(table).getByRole("button", { name: "Rotate" }));
    const dialog = await screen.findByRole("dialog", { name: "Rotate secret" });
    const grace = within(dialog).getByRole("textbox", { name: "Grace hours" });
    await user.clear(grace);
    await user.type(grace, "12");
    await user.click(within(dialog).getByRole("button", { name: "Rotate secret" }));
    expect(await screen.findByText("whsec_ROTATED")).toBeInTheDocument();
    expect(posts).toContainEqual({ path: `/v1/admin/secrets/${SECRET_ID}/rotate`, body: { grace_hours: 12 } });
    expect(await screen.findByText("rotated")).toBeInTheDocument();
  });

  it("revokes after a confirmation", async () => {
    signInAs("carol");
    const posts = serve();
    const { user } = renderApp("/callers?caller=registry");
    const table = await screen.findByRole("table", { name: "Secrets" });
    await user.click(within(table).getByRole("button", { name: "Revoke" }));
    const dialog = await screen.findByRole("dialog", { name: "Revoke this secret?" });
    expect(posts).toEqual([]);
    await user.click(within(dialog).getByRole("button", { name: "Revoke secret" }));
    await waitFor(() => expect(posts).toContainEqual({ path: `/v1/admin/secrets/${SECRET_ID}/revoke`, body: null }));
    expect(await screen.findByText("revoked")).toBeInTheDocument();
  });

  it("shows a caller without secrets as empty, and a refused call as a problem", async () => {
    signInAs("carol");
    server.use(http.get("*/v1/admin/callers/nobody/secrets", () => HttpResponse.json([])));
    renderApp("/callers?caller=nobody");
    expect(await screen.findByText("No secrets")).toBeInTheDocument();
  });

  it("shows a 403 as a problem", async () => {
    signInAs("carol");
    server.use(http.get("*/v1/admin/callers/registry/secrets", () => problem(403, { title: "Forbidden", detail: "admin only", code: "forbidden" })));
    renderApp("/callers?caller=registry");
    expect(await screen.findByText("admin only")).toBeInTheDocument();
  });
});
