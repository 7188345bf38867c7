// A policy's (or a request's) stages as a left-to-right graph: @xyflow/react drawing, dagre
// layout. Stages run in order; adjacent stages of one parallel group sit side by side (one
// column). Each node shows mode, skip condition and SLA; with `state` (a request's stages) it is
// coloured by status, the current stage is highlighted, and approvers and due dates are shown.
import dagre from "@dagrejs/dagre";
import { Badge, Box, Paper, Stack, Text, VisuallyHidden } from "@mantine/core";
import { Background, Handle, Position, ReactFlow, type Edge, type Node, type NodeProps } from "@xyflow/react";
import { useMemo } from "react";

import { compactJson, formatDateTime, formatHours } from "../lib/format";

export interface GraphStage {
  stage_order: number;
  name: string;
  mode: string;
  mode_value?: number | null;
  parallel_group?: number | null;
  skip_if?: unknown;
  sla_hours?: number | null;
  on_breach?: string | null;
}

/** What a request adds per stage (keyed by stage_order). */
export interface StageState {
  status?: string;
  current?: boolean;
  approvers?: string[];
  pending?: string[];
  due_at?: string | null;
}

type StageNodeData = { stage: GraphStage; state?: StageState };
type EndNodeData = { label: string };

const NODE_W = 240;
const NODE_H = 132;
const END_W = 80;
const END_H = 40;

const STATUS_COLOUR: Record<string, string> = {
  pending: "gray",
  resolving: "orange",
  active: "blue",
  approved: "green",
  rejected: "red",
  skipped: "gray",
  cancelled: "dark",
};

/** Consecutive stages with the same parallel_group form one column; the rest one column each. */
export function columns(stages: GraphStage[]): GraphStage[][] {
  const sorted = [...stages].sort((a, b) => a.stage_order - b.stage_order);
  const out: GraphStage[][] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    const group = s.parallel_group;
    if (last && group !== null && group !== undefined && last[0]!.parallel_group === group) last.push(s);
    else out.push([s]);
  }
  return out;
}

function modeText(s: GraphStage): string {
  switch (s.mode) {
    case "all":
      return "all must approve";
    case "any-n":
      return `any ${s.mode_value ?? 1}`;
    case "quorum":
      return `quorum of ${s.mode_value ?? "?"}`;
    case "percentage":
      return `${s.mode_value ?? "?"} % must approve`;
    default:
      return s.mode;
  }
}

/** Nodes and edges laid out by dagre, left to right (handles on the right and left sides). */
export function layout(stages: GraphStage[], state?: Record<number, StageState>): { nodes: Node[]; edges: Edge[] } {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 56, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  const cols = columns(stages);
  g.setNode("start", { width: END_W, height: END_H });
  g.setNode("end", { width: END_W, height: END_H });
  const edges: Edge[] = [];
  let previous = ["start"];
  for (const col of cols) {
    const ids = col.map((s) => `stage-${s.stage_order}`);
    for (const id of ids) g.setNode(id, { width: NODE_W, height: NODE_H });
    for (const from of previous) for (const to of ids) {
      g.setEdge(from, to);
      edges.push({ id: `${from}->${to}`, source: from, target: to, type: "smoothstep" });
    }
    previous = ids;
  }
  for (const from of previous) {
    g.setEdge(from, "end");
    edges.push({ id: `${from}->end`, source: from, target: "end", type: "smoothstep" });
  }
  dagre.layout(g);
  const byId = new Map(stages.map((s) => [`stage-${s.stage_order}`, s]));
  const nodes: Node[] = g.nodes().map((id) => {
    const p = g.node(id);
    const stage = byId.get(id);
    const w = stage ? NODE_W : END_W;
    const h = stage ? NODE_H : END_H;
    return {
      id,
      type: stage ? "stage" : "end",
      position: { x: p.x - w / 2, y: p.y - h / 2 },
      data: stage ? ({ stage, state: state?.[stage.stage_order] } satisfies StageNodeData) : ({ label: id === "start" ? "Start" : "End" } satisfies EndNodeData),
      // Left-to-right: edges leave on the right and enter on the left, or they loop back.
      sourcePosition: Position.Right,
      targetPosition: Position.Left,
      draggable: false,
      selectable: false,
      style: { width: w, height: h },
    };
  });
  return { nodes, edges };
}

function StageNode({ data }: NodeProps) {
  const { stage, state } = data as StageNodeData;
  const colour = state?.status ? (STATUS_COLOUR[state.status] ?? "gray") : "blue";
  return (
    <Paper
      withBorder
      p={8}
      radius="md"
      h="100%"
      style={{
        borderColor: `var(--mantine-color-${colour}-${state?.current ? 7 : 4})`,
        borderWidth: state?.current ? 3 : 1,
        background: state?.status ? `var(--mantine-color-${colour}-0)` : "white",
        overflow: "hidden",
      }}
      data-current={state?.current ? "true" : undefined}
    >
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <Stack gap={2}>
        <Text size="sm" fw={700} truncate="end" title={stage.name}>
          {stage.stage_order}. {stage.name}
        </Text>
        <Text size="xs">
          {modeText(stage)}
          {stage.parallel_group !== null && stage.parallel_group !== undefined && ` · parallel ${stage.parallel_group}`}
        </Text>
        {state?.status && (
          <Badge size="xs" variant="dot" color={colour} c="dark.7">
            {state.current ? `${state.status} (current)` : state.status}
          </Badge>
        )}
        {stage.skip_if !== null && stage.skip_if !== undefined && (
          <Text size="xs" truncate="end" title={compactJson(stage.skip_if)}>
            skip if {compactJson(stage.skip_if)}
          </Text>
        )}
        {stage.sla_hours ? (
          <Text size="xs">
            SLA {formatHours(stage.sla_hours)}
            {stage.on_breach ? `, then ${stage.on_breach.replace("_", " ")}` : ""}
          </Text>
        ) : null}
        {state?.approvers && state.approvers.length > 0 && (
          <Text size="xs" truncate="end" title={state.approvers.join(", ")}>
            approved: {state.approvers.join(", ")}
          </Text>
        )}
        {state?.pending && state.pending.length > 0 && (
          <Text size="xs" truncate="end" title={state.pending.join(", ")}>
            pending: {state.pending.join(", ")}
          </Text>
        )}
        {state?.due_at && <Text size="xs">due {formatDateTime(state.due_at)}</Text>}
      </Stack>
      <Handle type="source" position={Position.Right} isConnectable={false} />
    </Paper>
  );
}

function EndNode({ data }: NodeProps) {
  const { label } = data as EndNodeData;
  return (
    <Paper withBorder radius="xl" h="100%" style={{ display: "flex", alignItems: "center", justifyContent: "center" }} bg="gray.1">
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <Text size="xs" fw={600}>
        {label}
      </Text>
      <Handle type="source" position={Position.Right} isConnectable={false} />
    </Paper>
  );
}

const nodeTypes = { stage: StageNode, end: EndNode };

/** A text version of the picture, for screen readers (the graph itself is not navigable). */
export function describeStages(stages: GraphStage[], state?: Record<number, StageState>): string[] {
  return columns(stages).map((col) =>
    col
      .map((s) => {
        const st = state?.[s.stage_order];
        const parts = [`Stage ${s.stage_order} ${s.name}: ${modeText(s)}`];
        if (s.skip_if !== null && s.skip_if !== undefined) parts.push(`skipped if ${compactJson(s.skip_if)}`);
        if (s.sla_hours) parts.push(`SLA ${formatHours(s.sla_hours)}`);
        if (st?.status) parts.push(`status ${st.status}${st.current ? " (current)" : ""}`);
        if (st?.approvers?.length) parts.push(`approved by ${st.approvers.join(", ")}`);
        if (st?.pending?.length) parts.push(`pending ${st.pending.join(", ")}`);
        if (st?.due_at) parts.push(`due ${formatDateTime(st.due_at)}`);
        return parts.join(", ");
      })
      .join(" — in parallel with — "),
  );
}

export interface StageGraphProps {
  stages: GraphStage[];
  state?: Record<number, StageState>;
  /** The figure's accessible name. */
  label?: string;
  height?: number;
}

export function StageGraph({ stages, state, label = "Policy diagram", height = 340 }: StageGraphProps) {
  const { nodes, edges } = useMemo(() => layout(stages, state), [stages, state]);
  const description = useMemo(() => describeStages(stages, state), [stages, state]);
  return (
    <Box component="figure" m={0} aria-label={label}>
      <Box h={height} style={{ border: "1px solid var(--mantine-color-gray-3)", borderRadius: 8 }} aria-hidden>
        <ReactFlow
          nodes={nodes}
          edges={edges}
          nodeTypes={nodeTypes}
          fitView
          fitViewOptions={{ padding: 0.1, maxZoom: 1 }}
          nodesDraggable={false}
          nodesConnectable={false}
          elementsSelectable={false}
          nodesFocusable={false}
          edgesFocusable={false}
          proOptions={{ hideAttribution: true }}
          minZoom={0.2}
        >
          <Background gap={16} />
        </ReactFlow>
      </Box>
      <VisuallyHidden component="figcaption">
        <ol>
          {description.map((d) => (
            <li key={d}>{d}</li>
          ))}
        </ol>
      </VisuallyHidden>
      {stages.length === 0 && (
        <Text size="sm" c="dimmed" mt="xs">
          This policy has no stages: its requests are approved at once.
        </Text>
      )}
    </Box>
  );
}
