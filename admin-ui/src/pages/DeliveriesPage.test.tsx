import { screen, waitFor, within } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { renderApp, signInAs } from "../test/render";
import { server } from "../test/server";
import { REQUEST_ID, delivery } from "../test/opsFixtures";

describe("Deliveries", () => {
  it("sends the URL's filters and shows the last answer and error", async () => {
    signInAs("carol");
    const seen: URLSearchParams[] = [];
    server.use(
      http.get("*/v1/admin/deliveries", ({ request: r }) => {
        seen.push(new URL(r.url).searchParams);
        return HttpResponse.json([delivery()]);
      }),
    );
    renderApp(`/deliveries?status=exhausted&request_id=${REQUEST_ID}&event_type=request_created`);
    expect(await screen.findByText("gone for good")).toBeInTheDocument();
    const q = seen.at(-1)!;
    expect(q.get("status")).toBe("exhausted");
    expect(q.get("request_id")).toBe(REQUEST_ID);
    expect(q.get("event_type")).toBe("request_created");
    expect(screen.getByRole("button", { name: "Retry" })).toBeInTheDocument();
  });

  it("says so instead of sending a request id that is not a UUID", async () => {
    signInAs("carol");
    const seen: URLSearchParams[] = [];
    server.use(http.get("*/v1/admin/deliveries", ({ request: r }) => (seen.push(new URL(r.url).searchParams), HttpResponse.json([]))));
    renderApp("/deliveries?request_id=nope");
    expect(await screen.findByText("Not a request id (UUID)")).toBeInTheDocument();
    await waitFor(() => expect(seen.length).toBeGreaterThan(0));
    expect(seen.every((q) => q.get("request_id") === null)).toBe(true);
  });

  it("Retry all matching counts the exhausted deliveries, confirms and recovers with the same filters", async () => {
    signInAs("carol");
    let recoverBody: Record<string, unknown> | null = null;
    server.use(
      http.get("*/v1/admin/deliveries", ({ request: r }) => {
        const q = new URL(r.url).searchParams;
        if (q.get("limit") === "500") {
          // The count walks every page.
          return q.get("cursor")
            ? HttpResponse.json([delivery({ id: "8b3e4d1a-3333-4aaa-8bbb-000000000004" })])
            : HttpResponse.json([delivery(), delivery({ id: "8b3e4d1a-3333-4aaa-8bbb-000000000005" })], { headers: { "X-Next-Cursor": "p2" } });
        }
        return HttpResponse.json([delivery()]);
      }),
      http.post("*/v1/admin/deliveries/recover", async ({ request: r }) => {
        recoverBody = (await r.json()) as Record<string, unknown>;
        return HttpResponse.json({ requeued: 3 });
      }),
    );
    const { user } = renderApp("/deliveries?status=exhausted&url=http%3A%2F%2F127.0.0.1%3A9%2Fcallback");
    await user.click(await screen.findByRole("button", { name: "Retry all matching" }));
    const dialog = await screen.findByRole("dialog", { name: "Retry all matching deliveries?" });
    expect(within(dialog).getByText(/3 exhausted deliveries match these filters/)).toBeInTheDocument();
    await user.click(within(dialog).getByRole("button", { name: "Retry 3 deliveries" }));
    await waitFor(() => expect(recoverBody).not.toBeNull());
    expect(recoverBody).toMatchObject({ url: "http://127.0.0.1:9/callback", request_id: null, event_type: null, since: "1970-01-01T00:00:00Z" });
    expect(await screen.findByText("3 deliveries re-queued")).toBeInTheDocument();
  });

  it("offers Retry all matching only to admins, and only for exhausted ones", async () => {
    signInAs("victor", ["AWE_VIEWER"]);
    server.use(http.get("*/v1/admin/deliveries", () => HttpResponse.json([delivery()])));
    renderApp("/deliveries?status=exhausted");
    await screen.findByText("gone for good");
    expect(screen.queryByRole("button", { name: "Retry all matching" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Retry" })).not.toBeInTheDocument();
  });

  it("changes the Status filter in the URL", async () => {
    signInAs("carol");
    server.use(http.get("*/v1/admin/deliveries", () => HttpResponse.json([])));
    const { user, router } = renderApp("/deliveries");
    expect(await screen.findByText("No deliveries match")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Retry all matching" })).not.toBeInTheDocument();
    await user.click(screen.getByRole("combobox", { name: "Status" }));
    await user.click(await screen.findByRole("option", { name: "exhausted", hidden: true }));
    await waitFor(() => expect(router.state.location.search).toMatchObject({ status: "exhausted" }));
    expect(await screen.findByText("No exhausted deliveries")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Retry all matching" })).toBeInTheDocument();
  });

  it("looks again while a delivery is pending, so a retried one is seen going through", async () => {
    signInAs("carol");
    let calls = 0;
    server.use(
      http.get("*/v1/admin/deliveries", () => {
        calls += 1;
        return HttpResponse.json([
          calls === 1
            ? delivery({ status: "pending", attempt: 0, next_attempt_at: "2026-12-07T10:02:00Z", last_status_code: null, last_error: null })
            : delivery({ status: "delivered", last_status_code: 204, last_error: null }),
        ]);
      }),
    );
    renderApp("/deliveries");
    const table = await screen.findByRole("table", { name: "Deliveries" });
    expect(within(table).getByText("pending")).toBeInTheDocument();
    expect(await within(table).findByText("HTTP 204", {}, { timeout: 6000 })).toBeInTheDocument();
    expect(within(table).getByText("delivered")).toBeInTheDocument();
    expect(calls).toBe(2);
  });
});
