import { screen, waitFor, within } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { renderApp, signInAs } from "../test/render";
import { problem, server } from "../test/server";
import { REQUEST_ID, TASK_ID, task, taskPage } from "../test/opsFixtures";

const decision = (action: string) => ({
  id: "5d0a1b2c-5555-4aaa-8bbb-000000000001",
  request_id: REQUEST_ID,
  task_id: TASK_ID,
  stage_order: 2,
  actor: "carol",
  on_behalf_of: null,
  action,
  comment: "ok",
  attachments_ref: null,
  created_at: "2026-12-07T10:10:00Z",
  request_status: "approved",
  stage_status: "approved",
});

describe("My tasks", () => {
  it("lists the user's open tasks and approves one with a comment", async () => {
    signInAs("carol", []);
    const seen: URLSearchParams[] = [];
    let decided = false;
    let sent: unknown = null;
    server.use(
      http.get("*/v1/tasks", ({ request: r }) => {
        seen.push(new URL(r.url).searchParams);
        return HttpResponse.json(taskPage(decided ? [] : [task()]));
      }),
      http.post(`*/v1/tasks/${TASK_ID}/decision`, async ({ request: r }) => {
        sent = await r.json();
        decided = true;
        return HttpResponse.json(decision("approve"), { status: 201 });
      }),
    );
    const { user } = renderApp("/tasks");
    const card = await screen.findByRole("article", { name: "registry.change_request cr-42" });
    expect(seen[0]!.get("assignee")).toBe("me");
    expect(seen[0]!.get("status")).toBe("open,claimed");
    await user.type(within(card).getByRole("textbox", { name: "Comment" }), "ok");
    for (const name of ["Reject", "Abstain", "Request changes"]) expect(within(card).getByRole("button", { name })).toBeEnabled();
    await user.click(within(card).getByRole("button", { name: "Approve" }));
    expect(await screen.findByText(/Approved registry.change_request cr-42 \(stage 2\): stage approved, request approved/)).toBeInTheDocument();
    expect(sent).toEqual({ action: "approve", comment: "ok" });
    expect(await screen.findByText("Nothing to decide")).toBeInTheDocument();
  });

  it("shows a 409 problem in the task's card", async () => {
    signInAs("carol", []);
    server.use(
      http.get("*/v1/tasks", () => HttpResponse.json(taskPage([task()]))),
      http.post(`*/v1/tasks/${TASK_ID}/decision`, () => problem(409, { title: "Conflict", detail: "task is completed", code: "invalid_state" })),
    );
    const { user } = renderApp("/tasks");
    const card = await screen.findByRole("article", { name: "registry.change_request cr-42" });
    await user.click(within(card).getByRole("button", { name: "Reject" }));
    expect(await within(card).findByText("This task can no longer be decided")).toBeInTheDocument();
    expect(within(card).getByText("task is completed")).toBeInTheDocument();
  });

  it("shows a 403 (separation of duties) in the card", async () => {
    signInAs("carol", []);
    server.use(
      http.get("*/v1/tasks", () => HttpResponse.json(taskPage([task()]))),
      http.post(`*/v1/tasks/${TASK_ID}/decision`, () => problem(403, { title: "Forbidden", detail: "the requester may not approve", code: "forbidden" })),
    );
    const { user } = renderApp("/tasks");
    const card = await screen.findByRole("article", { name: "registry.change_request cr-42" });
    await user.click(within(card).getByRole("button", { name: "Approve" }));
    expect(await within(card).findByText("You may not decide this task")).toBeInTheDocument();
  });

  it("pages through the envelope's pages, keeping the page in the URL", async () => {
    signInAs("carol", []);
    const seen: string[] = [];
    server.use(
      http.get("*/v1/tasks", ({ request: r }) => {
        const page = new URL(r.url).searchParams.get("page") ?? "1";
        seen.push(page);
        const t = task({ id: `7a2d3c0f-2222-4aaa-8bbb-00000000000${page}`, artifact_id: `cr-${page}` });
        return HttpResponse.json(taskPage([t], { total: 12, pages: 2, page: Number(page) }));
      }),
    );
    const { user, router } = renderApp("/tasks");
    await screen.findByRole("article", { name: "registry.change_request cr-1" });
    await user.click(screen.getByRole("button", { name: "Page 2" }));
    expect(await screen.findByRole("article", { name: "registry.change_request cr-2" })).toBeInTheDocument();
    expect(router.state.location.search).toMatchObject({ page: "2" });
    expect(seen).toContain("2");
  });

  it("shows the done tasks with their decision", async () => {
    signInAs("carol", []);
    server.use(
      http.get("*/v1/tasks", ({ request: r }) => {
        expect(new URL(r.url).searchParams.get("status")).toBe("completed,skipped,expired,reassigned");
        return HttpResponse.json(taskPage([task({ status: "completed", decision_action: "approve", decision_comment: "fine" })]));
      }),
    );
    renderApp("/tasks?show=done");
    const card = await screen.findByRole("article", { name: "registry.change_request cr-42" });
    expect(within(card).queryByRole("button", { name: "Approve" })).not.toBeInTheDocument();
    await waitFor(() => expect(within(card).getByText(/“fine”/)).toBeInTheDocument());
  });
});
