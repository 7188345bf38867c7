import { screen, waitFor, within } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { renderApp, signInAs } from "../test/render";
import { server } from "../test/server";

const entry = {
  id: "3b4c5d6e-8888-4aaa-8bbb-000000000001",
  actor: "carol",
  action: "policy.activate",
  resource_type: "policy",
  resource_id: "registry.change_request@3",
  before: { status: "draft", version: 3 },
  after: { status: "active", version: 3 },
  trace_id: "abc123",
  created_at: "2026-12-07T10:00:00Z",
};

describe("Audit log", () => {
  it("sends the URL's filters and shows before and after side by side", async () => {
    signInAs("carol");
    const seen: URLSearchParams[] = [];
    server.use(
      http.get("*/v1/admin/audit", ({ request: r }) => {
        seen.push(new URL(r.url).searchParams);
        return HttpResponse.json([entry]);
      }),
    );
    const { user } = renderApp("/audit?actor=carol&resource_type=policy");
    const table = await screen.findByRole("table", { name: "Audit entries" });
    expect(seen.at(-1)!.get("actor")).toBe("carol");
    expect(seen.at(-1)!.get("resource_type")).toBe("policy");
    // The changed keys are named in the row.
    expect(within(table).getByText("status")).toBeInTheDocument();
    await user.click(within(table).getByRole("button", { name: /Before and after of policy.activate/ }));
    const before = await screen.findByRole("group", { name: "Before" });
    const after = screen.getByRole("group", { name: "After" });
    expect(before).toHaveTextContent('"status": "draft"');
    expect(after).toHaveTextContent('"status": "active"');
    expect(after).toHaveTextContent("changed:");
  });

  it("puts a typed filter in the URL", async () => {
    signInAs("carol");
    server.use(http.get("*/v1/admin/audit", () => HttpResponse.json([])));
    const { user, router } = renderApp("/audit");
    expect(await screen.findByText("No audit entries match")).toBeInTheDocument();
    await user.type(screen.getByRole("textbox", { name: "Action" }), "delivery.recover{Enter}");
    await waitFor(() => expect(router.state.location.search).toMatchObject({ action: "delivery.recover" }));
  });
});
