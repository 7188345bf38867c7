import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { parallelPolicy, policy } from "../test/policyFixtures";
import { renderComponent } from "../test/render";
import { columns, describeStages, layout, StageGraph, type GraphStage } from "./StageGraph";

const g = (stage_order: number, parallel_group: number | null = null, over: Partial<GraphStage> = {}): GraphStage => ({
  stage_order,
  name: `S${stage_order}`,
  mode: "any-n",
  mode_value: 1,
  parallel_group,
  ...over,
});

describe("columns", () => {
  it("puts adjacent stages of one parallel group in one column, in stage order", () => {
    const cols = columns([g(4), g(3, 1), g(1), g(2, 1)]);
    expect(cols.map((c) => c.map((s) => s.stage_order))).toEqual([[1], [2, 3], [4]]);
  });

  it("does not join stages of one group that are not adjacent, nor stages without a group", () => {
    const cols = columns([g(1, 1), g(2), g(3, 1), g(4), g(5)]);
    expect(cols.map((c) => c.map((s) => s.stage_order))).toEqual([[1], [2], [3], [4], [5]]);
  });

  it("keeps two different groups apart, and treats group 0 as a group", () => {
    const cols = columns([g(1, 0), g(2, 0), g(3, 2), g(4, 2)]);
    expect(cols.map((c) => c.map((s) => s.stage_order))).toEqual([[1, 2], [3, 4]]);
  });
});

describe("layout", () => {
  const stages = parallelPolicy().stages!;
  const { nodes, edges } = layout(stages);
  const at = (id: string) => nodes.find((n) => n.id === id)!;

  it("draws a parallel group side by side: one column, top to bottom in stage order", () => {
    expect(at("stage-2").position.x).toBe(at("stage-3").position.x);
    expect(at("stage-2").position.y).toBeLessThan(at("stage-3").position.y);
    // and the column sits between the stages before and after it
    expect(at("stage-1").position.x).toBeLessThan(at("stage-2").position.x);
    expect(at("stage-4").position.x).toBeGreaterThan(at("stage-2").position.x);
  });

  it("forks into the group and joins after it", () => {
    expect(edges.map((e) => `${e.source}>${e.target}`).sort()).toEqual(
      ["start>stage-1", "stage-1>stage-2", "stage-1>stage-3", "stage-2>stage-4", "stage-3>stage-4", "stage-4>end"].sort(),
    );
  });

  it("lays out left to right with edges leaving right and entering left", () => {
    expect(at("start").position.x).toBeLessThan(at("stage-1").position.x);
    expect(at("end").position.x).toBeGreaterThan(at("stage-4").position.x);
    for (const n of nodes) {
      expect(n.sourcePosition).toBe("right");
      expect(n.targetPosition).toBe("left");
    }
  });

  it("makes a node taller for each line a request adds", () => {
    const plain = layout([g(1)]).nodes.find((n) => n.id === "stage-1")!;
    const busy = layout([g(1)], { 1: { status: "active", pending: ["a"], approvers: ["b"], due_at: "2026-12-10T10:00:00Z" } }).nodes.find((n) => n.id === "stage-1")!;
    expect(Number(busy.style!.height)).toBeGreaterThan(Number(plain.style!.height));
  });
});

describe("StageGraph", () => {
  it("shows each stage's mode, skip condition and SLA on its node", async () => {
    renderComponent(<StageGraph stages={policy().stages!} label="Diagram of Change request approval v3" />);
    const picture = screen.getByRole("img", { name: "Diagram of Change request approval v3" });
    const director = (await within(picture).findByText("2. Director")).closest(".react-flow__node") as HTMLElement;
    expect(within(director).getByText("all must approve")).toBeInTheDocument();
    expect(within(director).getByText('skip if {"<":[{"var":"amount"},100]}')).toBeInTheDocument();
    expect(within(director).getByText("SLA 3 d, then notify")).toBeInTheDocument();
    const officers = within(picture).getByText("1. District officers").closest(".react-flow__node") as HTMLElement;
    expect(within(officers).getByText("SLA 2 d, then escalate")).toBeInTheDocument();
    expect(within(officers).queryByText(/^skip if/)).not.toBeInTheDocument();
  });

  it("labels parallel stages with their group", async () => {
    renderComponent(<StageGraph stages={parallelPolicy().stages!} />);
    const legal = (await screen.findByText("2. Legal")).closest(".react-flow__node") as HTMLElement;
    expect(within(legal).getByText("any 1 · parallel 1")).toBeInTheDocument();
  });

  it("gives screen readers the same facts as a list, one item per column", () => {
    renderComponent(<StageGraph stages={parallelPolicy().stages!} />);
    const items = within(screen.getByRole("list", { name: "Stages" })).getAllByRole("listitem");
    expect(items.map((i) => i.textContent)).toEqual([
      "Stage 1 Intake: any 1",
      'Stage 2 Legal: any 1, SLA 1 d — in parallel with — Stage 3 Finance: any 1, skipped if {"<":[{"var":"amount"},100]}',
      "Stage 4 Director: all must approve",
    ]);
  });

  it("colours by status and marks the current stage, in the drawing and in the list", async () => {
    const state = { 1: { status: "approved", approvers: ["alice"] }, 2: { status: "active", current: true, pending: ["carol"] } };
    renderComponent(<StageGraph stages={policy().stages!} state={state} label="Workflow diagram" />);
    const current = (await screen.findByText("active (current)")).closest("[data-current]");
    expect(current).toHaveTextContent("2. Director");
    expect(screen.getByText("approved", { selector: ".mantine-Badge-label" }).closest("[data-current]")).toBeNull();
    const items = within(screen.getByRole("list", { name: "Stages" })).getAllByRole("listitem");
    expect(items[1]).toHaveAttribute("aria-current", "step");
    expect(items[0]).not.toHaveAttribute("aria-current");
  });

  it("says that a policy without stages approves at once", () => {
    renderComponent(<StageGraph stages={[]} />);
    expect(screen.getByText("No stages: requests are approved at once.")).toBeInTheDocument();
  });
});

describe("describeStages", () => {
  it("names a veto only where it differs from the mode's default", () => {
    const lines = describeStages([
      g(1, null, { mode: "all", mode_value: null, veto: true }),
      g(2, null, { mode: "all", mode_value: null, veto: false }),
      g(3, null, { mode: "quorum", mode_value: 2, veto: true }),
      g(4, null, { mode: "quorum", mode_value: 2, veto: false }),
    ]);
    expect(lines.map((l) => l.text)).toEqual([
      "Stage 1 S1: all must approve",
      "Stage 2 S2: all must approve, rejects do not veto",
      "Stage 3 S3: quorum of 2, one reject vetoes",
      "Stage 4 S4: quorum of 2",
    ]);
  });

  it("says overdue instead of due once the date has passed", () => {
    const [line] = describeStages([g(1)], { 1: { status: "active", due_at: "2026-12-01T10:00:00Z", overdue: true } });
    expect(line!.text).toMatch(/status active, overdue since /);
  });

  it("names the modes as people read them", () => {
    const lines = describeStages([g(1, null, { mode: "quorum", mode_value: 3 }), g(2, null, { mode: "percentage", mode_value: 60 }), g(3, null, { mode: "any-n", mode_value: 2 })]);
    expect(lines.map((l) => l.text)).toEqual(["Stage 1 S1: quorum of 3", "Stage 2 S2: 60 % must approve", "Stage 3 S3: any 2"]);
  });
});
