import { screen } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { renderApp, signInAs } from "../test/render";
import { problem, server } from "../test/server";

const policy = {
  id: "0b6a2a70-0000-4000-8000-000000000001",
  policy_key: "registry.change_request",
  name: "Change request approval",
  artifact_type: "registry.change_request",
  version: 3,
  status: "active",
  created_by: "carol",
  created_at: "2026-12-01T10:00:00Z",
  forbid_self_approval: true,
  forbid_repeat_approvers: false,
  allow_request_changes: true,
  priority: 0,
  stages: [],
};

describe("Policies list", () => {
  it("lists each key with its version and status", async () => {
    signInAs("carol");
    server.use(http.get("*/v1/policies", () => HttpResponse.json([policy])));
    renderApp("/policies");
    const link = await screen.findByRole("link", { name: "Change request approval" });
    expect(link).toHaveAttribute("href", "/admin/policies/registry.change_request");
    expect(screen.getByText("v3")).toBeInTheDocument();
    expect(screen.getByText("active")).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "New policy" })).toBeInTheDocument();
  });

  it("shows an empty state and hides New policy from viewers", async () => {
    signInAs("victor", ["AWE_VIEWER"]);
    server.use(http.get("*/v1/policies", () => HttpResponse.json([])));
    renderApp("/policies");
    expect(await screen.findByText("No policies yet")).toBeInTheDocument();
    expect(screen.queryByRole("link", { name: "New policy" })).not.toBeInTheDocument();
  });

  it("shows the problem and a retry on an error", async () => {
    signInAs("carol");
    server.use(http.get("*/v1/policies", () => problem(503, { title: "Service Unavailable", detail: "database unreachable", code: "dependency_unavailable" })));
    renderApp("/policies");
    expect(await screen.findByText("database unreachable")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Try again" })).toBeInTheDocument();
  });
});
