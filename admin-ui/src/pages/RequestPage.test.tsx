import { screen, waitFor, within } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { beforeEach, describe, expect, it, vi } from "vitest";

import { renderApp, signInAs } from "../test/render";
import { problem, server } from "../test/server";
import { DELIVERY_ID, REQUEST_ID, TASK_ID, delivery, event, request, task, taskPage } from "../test/opsFixtures";

const SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>';

// jsdom has no object URLs; the page uses them for the diagram and the evidence download.
beforeEach(() => {
  URL.createObjectURL = vi.fn(() => "blob:diagram");
  URL.revokeObjectURL = vi.fn();
});

function serve(overrides: { verify?: unknown; deliveries?: unknown[] } = {}) {
  const calls: { method: string; path: string; body: unknown }[] = [];
  const record = async (r: Request) => {
    const text = await r.text();
    calls.push({ method: r.method, path: new URL(r.url).pathname, body: text ? JSON.parse(text) : null });
  };
  server.use(
    http.get(`*/v1/requests/${REQUEST_ID}`, () => HttpResponse.json(request())),
    http.get(`*/v1/requests/${REQUEST_ID}/diagram.svg`, () => new HttpResponse(SVG, { headers: { "Content-Type": "image/svg+xml" } })),
    http.get(`*/v1/requests/${REQUEST_ID}/events`, () =>
      HttpResponse.json([event(1, "request_created"), event(2, "stage_started", { stage_order: 1, approvers: ["alice"] }), event(3, "decision_recorded", { stage_order: 1, action: "approve", comment: "fine" })]),
    ),
    http.get(`*/v1/requests/${REQUEST_ID}/events/verify`, () => HttpResponse.json(overrides.verify ?? { valid: true, count: 3, broken_at_sequence: null })),
    http.get("*/v1/tasks", ({ request: r }) => {
      const q = new URL(r.url).searchParams;
      expect(q.get("assignee")).toBe("*");
      expect(q.get("request_id")).toBe(REQUEST_ID);
      return HttpResponse.json(
        taskPage([task({ id: "7a2d3c0f-2222-4aaa-8bbb-000000000001", stage_order: 1, assignee: "alice", status: "completed", decision_action: "approve", decision_comment: "fine" }), task()]),
      );
    }),
    http.get("*/v1/admin/deliveries", () => HttpResponse.json(overrides.deliveries ?? [delivery()])),
    http.get(`*/v1/admin/deliveries/${DELIVERY_ID}/attempts`, () =>
      HttpResponse.json([{ attempt: 1, started_at: "2026-12-07T10:01:00Z", duration_ms: 12, status_code: 410, error: "HTTP 410 Gone", trigger: "scheduled" }]),
    ),
    http.post(`*/v1/admin/deliveries/${DELIVERY_ID}/retry`, async ({ request: r }) => {
      await record(r);
      return HttpResponse.json(delivery({ status: "pending", attempt: 0 }));
    }),
    http.post(`*/v1/requests/${REQUEST_ID}/cancel`, async ({ request: r }) => {
      await record(r);
      return HttpResponse.json(request({ status: "cancelled" }));
    }),
    http.post(`*/v1/tasks/${TASK_ID}/reassign`, async ({ request: r }) => {
      await record(r);
      return HttpResponse.json(task({ id: "7a2d3c0f-2222-4aaa-8bbb-000000000005", assignee: "dave", reassigned_from: "carol" }));
    }),
    http.post(`*/v1/requests/${REQUEST_ID}/diagram-link`, () =>
      HttpResponse.json({ url: `http://svc/v1/requests/${REQUEST_ID}/diagram.svg?exp=1&sig=abc`, expires_at: "2026-12-07T10:20:00Z" }),
    ),
    http.get(`*/v1/requests/${REQUEST_ID}/evidence`, () => HttpResponse.json({ format: "countersign.evidence/v1" })),
  );
  return calls;
}

describe("Request detail", () => {
  it("shows the artifact as its heading, the pinned policy, the diagram and the tasks", async () => {
    signInAs("carol");
    serve();
    renderApp(`/requests/${REQUEST_ID}`);
    expect(await screen.findByRole("heading", { level: 1, name: "registry.change_request cr-42" })).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "registry.change_request v3" })).toHaveAttribute("href", "/admin/policies/registry.change_request/versions/3");
    expect(await screen.findByRole("img", { name: "Workflow diagram" })).toHaveAttribute("src", "blob:diagram");
    // The current stage is marked, with its approvers and due date.
    const current = await screen.findByText(/current stage/);
    const card = current.closest("[aria-current]")!;
    expect(card).toHaveAttribute("aria-current", "step");
    expect(within(card as HTMLElement).getByText("carol (open)")).toBeInTheDocument();
    expect(within(card as HTMLElement).getByText(/^Due /)).toBeInTheDocument();
    const tasks = await screen.findByRole("table", { name: "Tasks" });
    expect(within(tasks).getByText("“fine”")).toBeInTheDocument();
  });

  it("verifies the chain and says where it breaks", async () => {
    signInAs("carol");
    serve({ verify: { valid: false, count: 3, broken_at_sequence: 2 } });
    const { user } = renderApp(`/requests/${REQUEST_ID}`);
    const timeline = await screen.findByRole("region", { name: "Timeline" });
    expect(await within(timeline).findByText("2. stage started")).toBeInTheDocument();
    await user.click(within(timeline).getByRole("button", { name: "Verify chain" }));
    expect(await within(timeline).findByText("Chain broken at event 2 (of 3)")).toBeInTheDocument();
  });

  it("says Chain valid when the hashes hold", async () => {
    signInAs("carol");
    serve();
    const { user } = renderApp(`/requests/${REQUEST_ID}`);
    await user.click(await screen.findByRole("button", { name: "Verify chain" }));
    expect(await screen.findByText("Chain valid (3 events)")).toBeInTheDocument();
  });

  it("shows a delivery's attempts and retries it", async () => {
    signInAs("carol");
    const calls = serve();
    const { user } = renderApp(`/requests/${REQUEST_ID}`);
    const section = await screen.findByRole("region", { name: "Deliveries" });
    await user.click(await within(section).findByRole("button", { name: "Attempts of request_created #1" }));
    const attempts = await within(section).findByRole("table", { name: "Attempts" });
    expect(within(attempts).getByText("410")).toBeInTheDocument();
    expect(within(attempts).getByText("scheduled")).toBeInTheDocument();
    await user.click(within(section).getByRole("button", { name: "Retry" }));
    await waitFor(() => expect(calls.map((c) => c.path)).toContain(`/v1/admin/deliveries/${DELIVERY_ID}/retry`));
  });

  it("cancels with a reason after a confirmation", async () => {
    signInAs("carol");
    const calls = serve();
    const { user } = renderApp(`/requests/${REQUEST_ID}`);
    await user.click(await screen.findByRole("button", { name: "Cancel request" }));
    const dialog = await screen.findByRole("dialog", { name: "Cancel this request?" });
    await user.type(within(dialog).getByRole("textbox", { name: "Reason" }), "duplicate");
    await user.click(within(dialog).getByRole("button", { name: "Confirm cancel" }));
    await waitFor(() => expect(calls).toContainEqual({ method: "POST", path: `/v1/requests/${REQUEST_ID}/cancel`, body: { reason: "duplicate" } }));
  });

  it("reassigns an open task (admin)", async () => {
    signInAs("carol");
    const calls = serve();
    const { user } = renderApp(`/requests/${REQUEST_ID}`);
    const tasks = await screen.findByRole("table", { name: "Tasks" });
    await user.click(within(tasks).getByRole("button", { name: "Reassign" }));
    const dialog = await screen.findByRole("dialog", { name: "Reassign carol's task" });
    await user.type(within(dialog).getByRole("textbox", { name: "New assignee" }), "dave");
    await user.click(within(dialog).getByRole("button", { name: "Reassign task" }));
    await waitFor(() =>
      expect(calls).toContainEqual({ method: "POST", path: `/v1/tasks/${TASK_ID}/reassign`, body: { new_assignee: "dave", reason: null } }),
    );
  });

  it("hides reassign, retry and deliveries from a user who is neither admin nor viewer", async () => {
    signInAs("rita", []);
    serve();
    renderApp(`/requests/${REQUEST_ID}`);
    await screen.findByRole("table", { name: "Tasks" });
    expect(screen.queryByRole("button", { name: "Reassign" })).not.toBeInTheDocument();
    expect(screen.queryByRole("region", { name: "Deliveries" })).not.toBeInTheDocument();
    // The requester may cancel her own request.
    expect(screen.getByRole("button", { name: "Cancel request" })).toBeInTheDocument();
  });

  it("offers a signed diagram link to copy", async () => {
    signInAs("carol");
    serve();
    const { user } = renderApp(`/requests/${REQUEST_ID}`);
    await user.click(await screen.findByRole("button", { name: "Diagram link" }));
    const field = await screen.findByRole("textbox", { name: "Diagram link" });
    expect(field).toHaveValue(`http://svc/v1/requests/${REQUEST_ID}/diagram.svg?exp=1&sig=abc`);
    expect(screen.getByRole("button", { name: "Copy link" })).toBeInTheDocument();
  });

  it("downloads the evidence bundle", async () => {
    signInAs("carol");
    serve();
    const click = vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(() => {});
    const { user } = renderApp(`/requests/${REQUEST_ID}`);
    await user.click(await screen.findByRole("button", { name: "Evidence" }));
    await waitFor(() => expect(click).toHaveBeenCalled());
    const anchor = click.mock.contexts[0] as HTMLAnchorElement;
    expect(anchor.download).toBe(`evidence-${REQUEST_ID}.json`);
    click.mockRestore();
  });

  it("shows not found as a problem", async () => {
    signInAs("carol");
    server.use(http.get(`*/v1/requests/${REQUEST_ID}`, () => problem(404, { title: "Not Found", detail: "request not found", code: "request_not_found" })));
    renderApp(`/requests/${REQUEST_ID}`);
    expect(await screen.findByText("request not found")).toBeInTheDocument();
  });
});
