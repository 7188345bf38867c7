import { screen, waitFor, within } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { beforeEach, describe, expect, it, vi } from "vitest";

import { renderApp, signInAs } from "../test/render";
import { problem, server } from "../test/server";
import { DELIVERY_ID, REQUEST_ID, TASK_ID, delivery, event, request, task, taskPage } from "../test/opsFixtures";
import { policy } from "../test/policyFixtures";
import { requestGraph } from "./RequestPage";

// jsdom has no object URLs; the page uses them for the evidence download.
beforeEach(() => {
  URL.createObjectURL = vi.fn(() => "blob:diagram");
  URL.revokeObjectURL = vi.fn();
});

// The fixture's current stage, due in the future whenever the tests run (past due is "overdue").
const open = request({ stages: request().stages.map((s) => (s.stage_order === 2 ? { ...s, due_at: "2099-12-10T10:00:00Z" } : s)) });

function serve(overrides: { verify?: unknown; deliveries?: unknown[]; pinned?: "ok" | "forbidden" } = {}) {
  const calls: { method: string; path: string; body: unknown }[] = [];
  const reads: string[] = [];
  const record = async (r: Request) => {
    const text = await r.text();
    calls.push({ method: r.method, path: new URL(r.url).pathname, body: text ? JSON.parse(text) : null });
  };
  server.use(
    http.get(`*/v1/requests/${REQUEST_ID}`, () => HttpResponse.json(open)),
    // The pinned version (skip conditions, SLAs) for the diagram.
    http.get("*/v1/policies/registry.change_request/versions/3", ({ request: r }) => {
      reads.push(new URL(r.url).pathname);
      return overrides.pinned === "forbidden" ? problem(403, { title: "Forbidden", code: "forbidden" }) : HttpResponse.json(policy());
    }),
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
  return Object.assign(calls, { reads });
}

describe("Request detail", () => {
  it("shows the artifact as its heading, the pinned policy, the diagram and the tasks", async () => {
    signInAs("carol");
    serve();
    renderApp(`/requests/${REQUEST_ID}`);
    expect(await screen.findByRole("heading", { level: 1, name: "registry.change_request cr-42" })).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "registry.change_request v3" })).toHaveAttribute("href", "/admin/policies/registry.change_request/versions/3");
    // The diagram is the policy graph, coloured by status: the current stage is highlighted and
    // carries its pending approver, due date, skip condition and SLA from the pinned version.
    const diagram = await screen.findByRole("img", { name: "Workflow diagram" });
    // (The tasks may arrive after the stages: wait for both before looking at one node.)
    await within(diagram).findByText("pending: carol");
    await within(diagram).findByText("approved: alice");
    const director = within(diagram).getByText("2. Director").closest("[data-current]") as HTMLElement;
    expect(director).toHaveAttribute("data-current", "true");
    expect(within(director).getByText("active (current)")).toBeInTheDocument();
    expect(within(director).getByText("pending: carol")).toBeInTheDocument();
    expect(within(director).getByText(/^due /)).toBeInTheDocument();
    expect(within(director).getByText('skip if {"<":[{"var":"amount"},100]}')).toBeInTheDocument();
    expect(within(director).getByText("SLA 3 d, then notify")).toBeInTheDocument();
    const officers = within(diagram).getByText("1. District officers").closest(".react-flow__node") as HTMLElement;
    expect(officers.querySelector("[data-current]")).toBeNull();
    expect(within(officers).getByText("approved: alice")).toBeInTheDocument();
    expect(within(officers).getByText("SLA 2 d, then escalate")).toBeInTheDocument();
    // The same facts as a list for screen readers, the current stage marked.
    const items = within(screen.getByRole("list", { name: "Stages" })).getAllByRole("listitem");
    expect(items).toHaveLength(2);
    expect(items[0]).toHaveTextContent("Stage 1 District officers: any 1, SLA 2 d, then escalate, status approved, approved by alice");
    expect(items[0]).not.toHaveAttribute("aria-current");
    expect(items[1]).toHaveAttribute("aria-current", "step");
    expect(items[1]).toHaveTextContent(/status active \(current\), pending carol, due /);
    const tasks = await screen.findByRole("table", { name: "Tasks" });
    expect(within(tasks).getByText("“fine”")).toBeInTheDocument();
  });

  it("draws the diagram from the request alone when the pinned version cannot be read", async () => {
    // A requester without admin or viewer: no policy read at all, the picture still shows the stages.
    signInAs("rita", []);
    const calls = serve();
    renderApp(`/requests/${REQUEST_ID}`);
    const diagram = await screen.findByRole("img", { name: "Workflow diagram" });
    expect(await within(diagram).findByText("pending: carol")).toBeInTheDocument();
    expect(within(diagram).getByText("all must approve")).toBeInTheDocument();
    expect(within(diagram).queryByText(/^skip if/)).not.toBeInTheDocument();
    expect(within(diagram).queryByText(/^SLA/)).not.toBeInTheDocument();
    expect(calls.reads).toEqual([]);
  });

  it("says why skip conditions are missing when the pinned version fails to load", async () => {
    signInAs("carol");
    serve({ pinned: "forbidden" });
    renderApp(`/requests/${REQUEST_ID}`);
    expect(await screen.findByText(/skip conditions and SLAs are not shown/)).toBeInTheDocument();
    expect(screen.getByRole("img", { name: "Workflow diagram" })).toBeInTheDocument();
  });

  it("keeps the signed link to the service's SVG next to the diagram", async () => {
    signInAs("carol");
    serve();
    renderApp(`/requests/${REQUEST_ID}`);
    await screen.findByRole("img", { name: "Workflow diagram" });
    expect(screen.getByRole("button", { name: "Diagram link" })).toBeInTheDocument();
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

describe("requestGraph", () => {
  const stage = (order: number, status: string, over: Record<string, unknown> = {}) => ({
    stage_order: order,
    name: `S${order}`,
    parallel_group: null,
    status,
    mode: "any-n",
    mode_value: 1,
    due_at: null,
    resolution_error: null,
    next_resolution_at: null,
    counts: { approve: 0, reject: 0, abstain: 0, open: 0 },
    ...over,
  }) as ReturnType<typeof request>["stages"][number];

  it("marks every running stage of a parallel group as current", () => {
    const r = request({
      current_stage_order: 2,
      stages: [stage(1, "approved"), stage(2, "active", { parallel_group: 1 }), stage(3, "resolving", { parallel_group: 1 }), stage(4, "pending")],
    });
    const { stages, state } = requestGraph(r, []);
    expect(stages.map((s) => s.parallel_group)).toEqual([null, 1, 1, null]);
    expect([1, 2, 3, 4].map((n) => state[n]!.current)).toEqual([false, true, true, false]);
  });

  it("has no current stage once the request is decided", () => {
    const r = request({ status: "approved", current_stage_order: 2, stages: [stage(1, "approved"), stage(2, "approved")] });
    const { state } = requestGraph(r, []);
    expect(state[1]!.current).toBe(false);
    expect(state[2]!.current).toBe(false);
  });

  it("sorts people by decision and leaves out observers and reassigned tasks", () => {
    const r = request({ stages: [stage(1, "approved"), stage(2, "active")] });
    const tasks = [
      task({ id: "a", stage_order: 2, assignee: "alice", status: "completed", decision_action: "approve" }),
      task({ id: "b", stage_order: 2, assignee: "bob", status: "completed", decision_action: "reject" }),
      task({ id: "c", stage_order: 2, assignee: "cid", status: "completed", decision_action: "abstain" }),
      task({ id: "d", stage_order: 2, assignee: "dora", status: "claimed" }),
      task({ id: "e", stage_order: 2, assignee: "erin", status: "reassigned" }),
      task({ id: "f", stage_order: 2, assignee: "olga", kind: "observer", status: "open" }),
    ];
    const s2 = requestGraph(r, tasks).state[2]!;
    expect(s2).toMatchObject({ approvers: ["alice"], rejected: ["bob"], abstained: ["cid"], pending: ["dora"] });
  });

  it("shows the resolution error only while the stage is resolving", () => {
    const r = request({
      stages: [stage(1, "resolving", { resolution_error: "directory unavailable" }), stage(2, "approved", { resolution_error: "old" })],
    });
    const { state } = requestGraph(r, []);
    expect(state[1]!.error).toBe("directory unavailable");
    expect(state[2]!.error).toBeNull();
  });

  it("takes skip conditions, SLAs and veto from the pinned version, by stage order", () => {
    const { stages } = requestGraph(request(), [], policy());
    expect(stages[0]).toMatchObject({ sla_hours: 48, on_breach: "escalate", skip_if: null, veto: null });
    expect(stages[1]).toMatchObject({ sla_hours: 72, on_breach: "notify", skip_if: { "<": [{ var: "amount" }, 100] }, veto: true });
  });

  it("shows an open stage's due date, overdue once it has passed, and none on decided stages", () => {
    const r = request({
      stages: [stage(1, "approved", { due_at: "2026-12-08T10:00:00Z" }), stage(2, "active", { due_at: "2026-12-10T10:00:00Z" })],
    });
    const before = requestGraph(r, [], undefined, Date.parse("2026-12-09T00:00:00Z")).state;
    expect(before[1]).toMatchObject({ due_at: null, overdue: false });
    expect(before[2]).toMatchObject({ due_at: "2026-12-10T10:00:00Z", overdue: false });
    const after = requestGraph(r, [], undefined, Date.parse("2026-12-11T00:00:00Z")).state;
    expect(after[2]).toMatchObject({ due_at: "2026-12-10T10:00:00Z", overdue: true });
    expect(requestGraph({ ...r, status: "cancelled" }, [], undefined, Date.parse("2026-12-11T00:00:00Z")).state[2]!.due_at).toBeNull();
  });
});
