import { screen, waitFor, within } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { renderApp, signInAs } from "../test/render";
import { problem, server } from "../test/server";
import { REQUEST_ID, delivery, request } from "../test/opsFixtures";

function recordRequests(pages: Record<string, { body: unknown[]; next?: string }>) {
  const seen: URLSearchParams[] = [];
  server.use(
    http.get("*/v1/requests", ({ request: r }) => {
      const q = new URL(r.url).searchParams;
      seen.push(q);
      const page = pages[q.get("cursor") ?? ""] ?? { body: [] };
      return HttpResponse.json(page.body, { headers: page.next ? { "X-Next-Cursor": page.next } : {} });
    }),
    http.get("*/v1/policies", () => HttpResponse.json([])),
  );
  return seen;
}

describe("Requests list", () => {
  it("sends the filters of the query string and links each row to its request", async () => {
    signInAs("carol");
    const seen = recordRequests({ "": { body: [request()] } });
    renderApp("/requests?status=in_review&requester=rita&artifact_type=registry.change_request");
    const link = await screen.findByRole("link", { name: "registry.change_request cr-42" });
    expect(link).toHaveAttribute("href", `/admin/requests/${REQUEST_ID}`);
    const q = seen.at(-1)!;
    expect(q.get("status")).toBe("in_review");
    expect(q.get("requester")).toBe("rita");
    expect(q.get("artifact_type")).toBe("registry.change_request");
    expect(q.get("stuck")).toBeNull();
    expect(screen.getByText("2. Director")).toBeInTheDocument();
  });

  it("keeps a new filter in the URL and asks the service again", async () => {
    signInAs("carol");
    const seen = recordRequests({ "": { body: [request()] } });
    const { user, router } = renderApp("/requests");
    await screen.findByRole("link", { name: "registry.change_request cr-42" });
    await user.type(screen.getByRole("textbox", { name: "Artifact id" }), "cr-42{Enter}");
    await waitFor(() => expect(router.state.location.search).toMatchObject({ artifact_id: "cr-42" }));
    await waitFor(() => expect(seen.at(-1)!.get("artifact_id")).toBe("cr-42"));
  });

  it("shows why each stuck request is stuck", async () => {
    signInAs("carol");
    const other = request({ id: "6f1c2b9e-1111-4aaa-8bbb-000000000009", artifact_id: "cr-43" });
    const seen = recordRequests({ "": { body: [request(), other] } });
    server.use(
      http.get("*/v1/admin/stages", () =>
        HttpResponse.json([
          { request_id: other.id, stage_order: 1, name: "District officers", status: "resolving", cycle: 1, resolution_attempts: 3, next_resolution_at: null, last_resolution_error: "keycloak unreachable", updated_at: "2026-12-07T10:00:00Z" },
        ]),
      ),
      http.get("*/v1/admin/deliveries", () => HttpResponse.json([delivery()])),
    );
    renderApp("/requests?stuck=true");
    expect(await screen.findByText(/Delivery of request_created exhausted: HTTP 410: gone for good/)).toBeInTheDocument();
    expect(screen.getByText(/Stage 1 \(District officers\) resolving: keycloak unreachable \(3 tries\)/)).toBeInTheDocument();
    expect(seen.at(-1)!.get("stuck")).toBe("true");
    expect(screen.getByRole("switch", { name: /Stuck only/ })).toBeChecked();
  });

  it("pages with the cursor the service sent", async () => {
    signInAs("carol");
    const seen = recordRequests({
      "": { body: [request()], next: "c2" },
      c2: { body: [request({ id: "6f1c2b9e-1111-4aaa-8bbb-000000000008", artifact_id: "cr-7" })] },
    });
    const { user } = renderApp("/requests");
    await screen.findByRole("link", { name: "registry.change_request cr-42" });
    const pages = screen.getByRole("navigation", { name: "Request pages" });
    await user.click(within(pages).getByRole("button", { name: "Next page" }));
    expect(await screen.findByRole("link", { name: "registry.change_request cr-7" })).toBeInTheDocument();
    expect(seen.at(-1)!.get("cursor")).toBe("c2");
    expect(within(pages).getByText("Page 2")).toBeInTheDocument();
  });

  it("has an empty state", async () => {
    signInAs("carol");
    recordRequests({ "": { body: [] } });
    renderApp("/requests");
    expect(await screen.findByText("No requests match")).toBeInTheDocument();
  });

  it("shows the service's problem with a retry", async () => {
    signInAs("carol");
    recordRequests({});
    server.use(http.get("*/v1/requests", () => problem(503, { title: "Service Unavailable", detail: "database unreachable", code: "dependency_unavailable" })));
    renderApp("/requests");
    expect(await screen.findByText("database unreachable")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Try again" })).toBeInTheDocument();
  });
});
