import { screen, waitFor, within } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { renderApp, signInAs } from "../test/render";
import { problem, server } from "../test/server";

const DELEGATION_ID = "2a3b4c5d-7777-4aaa-8bbb-000000000001";
const delegation = (over: Record<string, unknown> = {}) => ({
  id: DELEGATION_ID,
  user_id: "alice",
  delegate_to: "bob",
  starts_at: "2020-01-01T00:00:00Z",
  ends_at: "2099-01-01T00:00:00Z",
  reason: "holiday",
  created_by: "alice",
  created_at: "2020-01-01T00:00:00Z",
  ...over,
});

describe("Delegations", () => {
  it("creates the user's own out-of-office (no user_id sent)", async () => {
    signInAs("alice", []);
    let sent: Record<string, unknown> | null = null;
    server.use(
      http.get("*/v1/delegations", () => HttpResponse.json([])),
      http.post("*/v1/delegations", async ({ request: r }) => {
        sent = (await r.json()) as Record<string, unknown>;
        return HttpResponse.json(delegation(), { status: 201 });
      }),
    );
    const { user } = renderApp("/delegations");
    expect(await screen.findByRole("heading", { name: "Out of office" })).toBeInTheDocument();
    expect(await screen.findByText("No delegations")).toBeInTheDocument();
    expect(screen.queryByRole("combobox", { name: /For user/ })).not.toBeInTheDocument();
    await user.type(screen.getByRole("combobox", { name: /Delegate to/ }), "bob");
    await user.type(screen.getByRole("textbox", { name: "Reason" }), "holiday");
    await user.click(screen.getByRole("button", { name: "Delegate my tasks" }));
    await waitFor(() => expect(sent).not.toBeNull());
    expect(sent).toMatchObject({ user_id: null, delegate_to: "bob", reason: "holiday" });
    expect(Date.parse(sent!.ends_at as string) - Date.parse(sent!.starts_at as string)).toBe(7 * 24 * 3600 * 1000);
  });

  it("lets an admin create one for someone else and shows everyone's", async () => {
    signInAs("carol");
    let sent: Record<string, unknown> | null = null;
    server.use(
      http.get("*/v1/delegations", () => HttpResponse.json([delegation()])),
      http.post("*/v1/delegations", async ({ request: r }) => {
        sent = (await r.json()) as Record<string, unknown>;
        return HttpResponse.json(delegation({ user_id: "dave" }), { status: 201 });
      }),
    );
    const { user } = renderApp("/delegations");
    const table = await screen.findByRole("table", { name: "Delegations" });
    expect(within(table).getByText("alice")).toBeInTheDocument();
    expect(within(table).getByText("active")).toBeInTheDocument();
    await user.type(screen.getByRole("combobox", { name: /For user/ }), "dave");
    await user.type(screen.getByRole("combobox", { name: /Delegate to/ }), "erin");
    await user.click(screen.getByRole("button", { name: "Create delegation" }));
    await waitFor(() => expect(sent).toMatchObject({ user_id: "dave", delegate_to: "erin" }));
  });

  it("refuses an end before the start without calling the service", async () => {
    signInAs("alice", []);
    server.use(http.get("*/v1/delegations", () => HttpResponse.json([])));
    const { user } = renderApp("/delegations");
    const ends = await screen.findByLabelText(/^Ends/);
    await user.clear(ends);
    await user.type(ends, "2000-01-01T10:00");
    expect(await screen.findByText("Must be after the start")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Delegate my tasks" })).toBeDisabled();
  });

  it("deletes after a confirmation and shows a refusal", async () => {
    signInAs("alice", []);
    server.use(
      http.get("*/v1/delegations", () => HttpResponse.json([delegation()])),
      http.delete(`*/v1/delegations/${DELEGATION_ID}`, () => problem(403, { title: "Forbidden", detail: "not yours", code: "forbidden" })),
    );
    const { user } = renderApp("/delegations");
    const table = await screen.findByRole("table", { name: "Delegations" });
    await user.click(within(table).getByRole("button", { name: "Delete" }));
    const dialog = await screen.findByRole("dialog", { name: "Delete this delegation?" });
    await user.click(within(dialog).getByRole("button", { name: "Delete delegation" }));
    expect(await within(dialog).findByText("not yours")).toBeInTheDocument();
  });
});
