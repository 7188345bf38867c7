import { configure, screen, waitFor, within } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { describe, expect, it, vi } from "vitest";

import type { PolicyOut } from "../api/schema";
import { POLICY_KEY, policy } from "../test/policyFixtures";
import { renderApp, signInAs } from "../test/render";
import { problem, server } from "../test/server";
import { policyInFrom } from "./PolicyVersionPage";

// A whole editor per test: see PolicyEditor.test.tsx.
configure({ defaultHidden: true });
vi.setConfig({ testTimeout: 60_000 });

const base = `*/v1/policies/${POLICY_KEY}`;

function serve(stored: PolicyOut, patchAnswer?: () => Response) {
  const calls: { method: string; path: string; body: unknown }[] = [];
  const record = async (r: Request) => {
    const text = await r.text();
    calls.push({ method: r.method, path: new URL(r.url).pathname, body: text ? JSON.parse(text) : null });
  };
  server.use(
    http.get(`${base}/versions`, () => HttpResponse.json([{ id: stored.id, policy_key: POLICY_KEY, version: stored.version, status: stored.status, created_at: stored.created_at, created_by: "carol" }])),
    http.get(`${base}/versions/:v`, ({ params }) => HttpResponse.json({ ...stored, version: Number(params.v) })),
    http.patch(`${base}/versions/:v`, async ({ request }) => {
      await record(request);
      return patchAnswer ? patchAnswer() : HttpResponse.json(stored);
    }),
    http.post(`${base}/versions/:v/activate`, async ({ request }) => {
      await record(request);
      return HttpResponse.json({ ...stored, status: "active" });
    }),
    http.put(base, async ({ request }) => {
      await record(request);
      return HttpResponse.json({ ...stored, id: "new", version: stored.version + 1, status: "draft" }, { status: 201 });
    }),
  );
  return calls;
}

describe("Policy version page", () => {
  it("publishes a draft: saves the edits, then activates, then shows the policy", async () => {
    signInAs("carol");
    const draft = policy({ status: "draft" });
    const calls = serve(draft);
    const { user, router } = renderApp(`/policies/${POLICY_KEY}/versions/3`);
    expect(await screen.findByRole("heading", { level: 1, name: "Change request approval v3" })).toBeInTheDocument();
    const name = screen.getByRole("textbox", { name: "Name" });
    await user.clear(name);
    await user.type(name, "Change requests");
    await user.click(screen.getByRole("button", { name: "Publish" }));
    await waitFor(() => expect(router.state.location.pathname).toBe(`/policies/${POLICY_KEY}`));
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      `PATCH /v1/policies/${POLICY_KEY}/versions/3`,
      `POST /v1/policies/${POLICY_KEY}/versions/3/activate`,
    ]);
    expect(calls[0]!.body).toEqual({ ...policyInFrom(draft), name: "Change requests" });
  });

  it("shows the service's validation error next to its field and does not activate", async () => {
    signInAs("carol");
    const calls = serve(policy({ status: "draft" }), () =>
      problem(422, {
        title: "Validation failed",
        code: "validation_failed",
        errors: [{ pointer: "/stages/1/mode_value", detail: "all takes no mode_value" }],
      }),
    );
    const { user } = renderApp(`/policies/${POLICY_KEY}/versions/3`);
    await user.click(await screen.findByRole("button", { name: "Publish" }));
    const second = screen.getByRole("group", { name: "Stage 2" });
    await waitFor(() => expect(within(second).getByRole("textbox", { name: "Mode value" })).toHaveAccessibleDescription(/all takes no mode_value/));
    expect(calls.map((c) => c.method)).toEqual(["PATCH"]);
  });

  it("shows a version in use read-only and starts a new draft from it", async () => {
    signInAs("carol");
    const active = policy({ status: "active" });
    const calls = serve(active);
    const { user, router } = renderApp(`/policies/${POLICY_KEY}/versions/3`);
    expect(await screen.findByText("This version is active")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Save draft" })).not.toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Edit as new draft" }));
    await waitFor(() => expect(router.state.location.pathname).toBe(`/policies/${POLICY_KEY}/versions/4`));
    expect(calls).toEqual([{ method: "PUT", path: `/v1/policies/${POLICY_KEY}`, body: policyInFrom(active) }]);
  });

  it("does not let a viewer edit a draft", async () => {
    signInAs("vera", ["AWE_VIEWER"]);
    serve(policy({ status: "draft" }));
    renderApp(`/policies/${POLICY_KEY}/versions/3`);
    await screen.findByRole("heading", { level: 1, name: "Change request approval v3" });
    expect(screen.queryByRole("button", { name: "Save draft" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Edit as new draft" })).not.toBeInTheDocument();
    expect(screen.getByRole("textbox", { name: "Name" })).toHaveAttribute("readonly");
  });
});
