import { EditorView } from "@codemirror/view";
import { act, screen, waitFor, within } from "@testing-library/react";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import type { PolicyVersionOut, ReplayOut, SimulateOut } from "../api/schema";
import { POLICY_KEY, policy } from "../test/policyFixtures";
import { renderApp, signInAs } from "../test/render";
import { server } from "../test/server";

const base = `*/v1/policies/${POLICY_KEY}`;

const versions: PolicyVersionOut[] = [
  { id: "v3", policy_key: POLICY_KEY, version: 3, status: "draft", created_at: "2026-12-05T09:00:00Z", created_by: "carol" },
  { id: "v2", policy_key: POLICY_KEY, version: 2, status: "active", created_at: "2026-12-03T09:00:00Z", created_by: "carol" },
  { id: "v1", policy_key: POLICY_KEY, version: 1, status: "archived", created_at: "2026-12-01T09:00:00Z", created_by: "carol" },
];

function serve() {
  const calls: { path: string; body: unknown }[] = [];
  server.use(
    http.get(`${base}/versions`, () => HttpResponse.json(versions)),
    http.get(`${base}/versions/:v`, ({ params }) => {
      const v = versions.find((x) => x.version === Number(params.v))!;
      return HttpResponse.json(policy({ id: v.id, version: v.version, status: v.status }));
    }),
    http.get(`${base}/versions/:a/diff/:b`, ({ params }) => {
      calls.push({ path: `diff ${params.a} ${params.b}`, body: null });
      return HttpResponse.json({
        changes: [
          { pointer: "/stages/1/sla_hours", before: 48, after: 72 },
          { pointer: "/stages/2", after: { name: "Board" } },
        ],
      });
    }),
    http.post(`${base}/versions/:v/activate`, ({ params }) => {
      calls.push({ path: `activate ${params.v}`, body: null });
      return HttpResponse.json(policy({ version: Number(params.v), status: "active" }));
    }),
    http.post(`${base}/versions/:v/simulate`, async ({ request, params }) => {
      calls.push({ path: `simulate ${params.v}`, body: await request.json() });
      return HttpResponse.json(simulation);
    }),
    http.post(`${base}/versions/:v/replay`, async ({ request, params }) => {
      calls.push({ path: `replay ${params.v}`, body: await request.json() });
      return HttpResponse.json(replay);
    }),
  );
  return calls;
}

const simulation: SimulateOut = {
  policy_key: POLICY_KEY,
  policy_version: 2,
  outcome: "pending",
  stages: [
    {
      stage_order: 1,
      name: "District officers",
      mode: "any-n",
      mode_value: 1,
      resolved_approvers: ["bob", "dave"],
      required_approvers: ["bob"],
      observers: ["audrey"],
      removed_by_sod: ["rita"],
      skipped: false,
      skip_reason: null,
      trace: {
        rules: [
          { index: 0, rule_type: "group", rule_value: { group: "/districts/D1" }, kind: "approver", required: false, resolved: ["rita", "bob", "carl"], error: null },
          { index: 1, rule_type: "http", rule_value: { url: "https://dir.example" }, kind: "approver", required: true, resolved: [], error: "timed out after 5 s" },
        ],
        removed: [{ user_id: "rita", reason: "requester", detail: "is the requester" }],
        delegations: [{ delegation_id: "d1", user_id: "carl", delegate_to: "dave" }],
        skip_condition: null,
        skip_result: null,
      },
    },
    {
      stage_order: 2,
      name: "Director",
      mode: "all",
      mode_value: null,
      resolved_approvers: [],
      required_approvers: [],
      observers: [],
      removed_by_sod: [],
      skipped: true,
      skip_reason: "skip_if",
      trace: { rules: [], removed: [], delegations: [], skip_condition: { "<": [{ var: "amount" }, 100] }, skip_result: true },
    },
  ],
};

const replay: ReplayOut = {
  policy_key: POLICY_KEY,
  version: 3,
  compared_with: 2,
  replayed: 40,
  truncated: false,
  changed: [
    {
      request_id: "6f1c2b9e-1111-4aaa-8bbb-000000000001",
      artifact_type: "registry.change_request",
      artifact_id: "cr-42",
      created_at: "2026-12-04T10:00:00Z",
      before: { policy_key: POLICY_KEY, version: 2, outcome: "pending", stages: [] },
      after: { policy_key: POLICY_KEY, version: 3, outcome: "approved", stages: [] },
      differences: [
        { kind: "skipped", stage_order: 2, detail: "would be skipped", before: false, after: true },
        { kind: "outcome", stage_order: null, detail: "outcome pending → approved", before: "pending", after: "approved" },
      ],
    },
  ],
};

describe("Policy page: versions and diff", () => {
  it("offers the action each version's status allows, and rolls back to an archived one", async () => {
    signInAs("carol");
    const calls = serve();
    const { user } = renderApp(`/policies/${POLICY_KEY}`);
    expect(await screen.findByRole("button", { name: "Publish v3" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Deactivate v2" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Publish v2" })).not.toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Roll back to v1" }));
    await waitFor(() => expect(calls.map((c) => c.path)).toContain("activate 1"));
  });

  it("compares the two newest versions side by side, a missing side as a dash", async () => {
    signInAs("carol");
    const calls = serve();
    renderApp(`/policies/${POLICY_KEY}`);
    const table = await screen.findByRole("table", { name: "Differences between v2 and v3" });
    expect(calls.map((c) => c.path)).toContain("diff 2 3");
    const headers = within(table).getAllByRole("columnheader").map((h) => h.textContent);
    expect(headers).toEqual(["Field", "v2", "v3"]);
    const [sla, added] = within(table).getAllByRole("row").slice(1);
    expect(within(sla!).getAllByRole("cell").map((c) => c.textContent)).toEqual(["/stages/1/sla_hours", "48", "72"]);
    const cells = within(added!).getAllByRole("cell").map((c) => c.textContent);
    expect(cells[1]).toBe("—");
    expect(JSON.parse(cells[2]!)).toEqual({ name: "Board" });
  });

  it("asks for two different versions before comparing", async () => {
    signInAs("carol");
    const calls = serve();
    const { user } = renderApp(`/policies/${POLICY_KEY}`);
    await screen.findByRole("table", { name: "Differences between v2 and v3" });
    await user.selectOptions(screen.getByRole("combobox", { name: "From" }), "3");
    expect(await screen.findByText("Pick two different versions.")).toBeInTheDocument();
    expect(calls.filter((c) => c.path === "diff 3 3")).toEqual([]);
    await user.selectOptions(screen.getByRole("combobox", { name: "To" }), "1");
    expect(await screen.findByRole("table", { name: "Differences between v3 and v1" })).toBeInTheDocument();
  });
});

describe("Policy page: simulate", () => {
  it("refuses a context that is not a JSON object, without asking the service", async () => {
    signInAs("carol");
    const calls = serve();
    const { user } = renderApp(`/policies/${POLICY_KEY}?tab=Simulate&version=2`);
    const context = await screen.findByRole("textbox", { name: "Context" });
    const view = EditorView.findFromDOM(context)!;
    const set = (text: string) => act(() => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }));
    set('{"amount": ');
    await user.click(screen.getByRole("button", { name: "Simulate" }));
    expect(await screen.findByText(/^Not valid JSON/)).toBeInTheDocument();
    set("[1, 2]");
    await user.click(screen.getByRole("button", { name: "Simulate" }));
    expect(await screen.findByText("The context is a JSON object")).toBeInTheDocument();
    expect(calls.filter((c) => c.path.startsWith("simulate"))).toEqual([]);
  });

  it("sends the context and requester, and shows each stage's resolution trace", async () => {
    signInAs("carol");
    const calls = serve();
    const { user } = renderApp(`/policies/${POLICY_KEY}?tab=Simulate&version=2`);
    await screen.findByRole("textbox", { name: "Context" });
    await user.type(screen.getByRole("textbox", { name: "Requester" }), "rita");
    await user.click(screen.getByRole("button", { name: "Simulate" }));
    const first = await screen.findByRole("group", { name: "Stage 1 District officers" });
    expect(calls).toContainEqual({ path: "simulate 2", body: { context: { amount: 500 }, requester: "rita" } });
    expect(within(first).getByText("bob, dave")).toBeInTheDocument();
    // every rule with what it resolved, or its error
    const rules = within(first).getByRole("table", { name: "Rules of stage 1" });
    const [group, web] = within(rules).getAllByRole("row").slice(1);
    expect(within(group!).getAllByRole("cell")[2]).toHaveTextContent("rita, bob, carl");
    expect(within(web!).getAllByRole("cell")[0]).toHaveTextContent("2. http (required)");
    expect(within(web!).getAllByRole("cell")[2]).toHaveTextContent("timed out after 5 s");
    // who separation of duties removed and why, and delegate substitutions
    expect(within(first).getByText("Removed by separation of duties")).toBeInTheDocument();
    expect(within(first).getByText("rita: is the requester")).toBeInTheDocument();
    expect(within(first).getByText("carl → dave")).toBeInTheDocument();
    expect(within(first).getByText("Required:").parentElement).toHaveTextContent("Required: bob");
    // a skipped stage says which condition skipped it
    const second = screen.getByRole("group", { name: "Stage 2 Director" });
    expect(second).toHaveTextContent('Skipped: skip_if because {"<":[{"var":"amount"},100]} is true');
  });

  it("sends no requester when the field is empty", async () => {
    signInAs("carol");
    const calls = serve();
    const { user } = renderApp(`/policies/${POLICY_KEY}?tab=Simulate&version=2`);
    await user.click(await screen.findByRole("button", { name: "Simulate" }));
    await screen.findByRole("group", { name: "Stage 1 District officers" });
    expect(calls).toContainEqual({ path: "simulate 2", body: { context: { amount: 500 }, requester: null } });
  });
});

describe("Policy page: replay (Changes)", () => {
  it("replays recent requests through the version and lists those that would change", async () => {
    signInAs("carol");
    const calls = serve();
    const { user } = renderApp(`/policies/${POLICY_KEY}?tab=Changes&version=3`);
    const limit = await screen.findByRole("textbox", { name: "Requests to replay" });
    await user.clear(limit);
    await user.type(limit, "40");
    await user.click(screen.getByRole("button", { name: "Replay" }));
    const table = await screen.findByRole("table", { name: "Requests that would change" });
    expect(calls).toContainEqual({ path: "replay 3", body: { limit: 40 } });
    expect(screen.getByText(/Replayed 40 requests \(the active version is v2\); 1 would change\./)).toBeInTheDocument();
    expect(within(table).getByRole("link", { name: "registry.change_request cr-42" })).toHaveAttribute("href", "/admin/requests/6f1c2b9e-1111-4aaa-8bbb-000000000001");
    expect(within(table).getByText("stage 2: would be skipped")).toBeInTheDocument();
    expect(within(table).getByText("outcome pending → approved")).toBeInTheDocument();
  });
});
