// A policy's (or a request's) stages as a left-to-right graph: @xyflow/react drawing, dagre
// layout. Stages run in order; adjacent stages of one parallel group sit side by side (one
// column). Each node shows mode, skip condition and SLA; with `state` (a request's stages) it is
// coloured by status, the current stage is highlighted, and approvers and due dates are shown.
import dagre from "@dagrejs/dagre";
import { Badge, Box, Paper, Stack, Text, VisuallyHidden } from "@mantine/core";
import { Background, Handle, Position, ReactFlow, type Edge, type Node, type NodeProps } from "@xyflow/react";
import { useElementSize } from "@mantine/hooks";
import { useMemo } from "react";

import { compactJson, formatDateTime, formatHours } from "../lib/format";

export interface GraphStage {
  stage_order: number;
  name: string;
  mode: string;
  mode_value?: number | null;
  parallel_group?: number | null;
  /** Only a value other than the mode's default is shown (as the service's SVG does). */
  veto?: boolean | null;
  skip_if?: unknown;
  sla_hours?: number | null;
  on_breach?: string | null;
}

/** What a request adds per stage (keyed by stage_order). */
export interface StageState {
  status?: string;
  current?: boolean;
  /** Who approved, rejected, abstained; who has still to decide. */
  approvers?: string[];
  rejected?: string[];
  abstained?: string[];
  pending?: string[];
  due_at?: string | null;
  /** The due date has passed and the stage is still open. */
  overdue?: boolean;
  /** Why a resolving stage has no approvers yet (the stage's resolution_error). */
  error?: string | null;
}

type StageNodeData = { stage: GraphStage; state?: StageState };
type EndNodeData = { label: string };

const NODE_W = 240;
const LINE_H = 18;
const NODE_SEP = 24;
const NODE_PAD = 24;
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

function baseModeText(s: GraphStage): string {
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

function modeText(s: GraphStage): string {
  const defaultVeto = s.mode === "all" || s.mode === "any-n";
  if (s.veto === null || s.veto === undefined || s.veto === defaultVeto) return baseModeText(s);
  return `${baseModeText(s)}, ${s.veto ? "one reject vetoes" : "rejects do not veto"}`;
}

const hasSkip = (s: GraphStage) => s.skip_if !== null && s.skip_if !== undefined;
const some = (xs: string[] | undefined): xs is string[] => !!xs && xs.length > 0;

/** The text lines a node shows (its height follows them; a request's nodes carry more). */
function lineCount(s: GraphStage, st: StageState | undefined): number {
  const optional = [
    hasSkip(s),
    !!s.sla_hours,
    !!st?.status,
    some(st?.approvers),
    some(st?.rejected),
    some(st?.abstained),
    some(st?.pending),
    !!st?.due_at,
    !!st?.error,
  ];
  return 2 + optional.filter(Boolean).length;
}

export function nodeHeight(s: GraphStage, st?: StageState): number {
  return NODE_PAD + LINE_H * lineCount(s, st);
}

/** Nodes and edges laid out by dagre, left to right (handles on the right and left sides). */
export function layout(
  stages: GraphStage[],
  state?: Record<number, StageState>,
): { nodes: Node[]; edges: Edge[]; width: number; height: number } {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: NODE_SEP, ranksep: 56, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  const cols = columns(stages);
  g.setNode("start", { width: END_W, height: END_H });
  g.setNode("end", { width: END_W, height: END_H });
  const edges: Edge[] = [];
  let previous = ["start"];
  for (const col of cols) {
    const ids = col.map((s) => `stage-${s.stage_order}`);
    col.forEach((s, i) => g.setNode(ids[i]!, { width: NODE_W, height: nodeHeight(s, state?.[s.stage_order]) }));
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
  // dagre orders a column to avoid crossings and may put a group's later stage on top: restack
  // each parallel column top to bottom in stage order, so the picture reads in order.
  const centre = new Map<string, { x: number; y: number }>();
  for (const id of g.nodes()) centre.set(id, { x: g.node(id).x, y: g.node(id).y });
  for (const col of cols) {
    if (col.length < 2) continue;
    const ids = col.map((s) => `stage-${s.stage_order}`);
    let top = Math.min(...ids.map((id) => g.node(id).y - g.node(id).height / 2));
    for (const id of ids) {
      const h = g.node(id).height;
      centre.set(id, { x: g.node(id).x, y: top + h / 2 });
      top += h + NODE_SEP;
    }
  }
  const byId = new Map(stages.map((s) => [`stage-${s.stage_order}`, s]));
  const nodes: Node[] = g.nodes().map((id) => {
    const p = centre.get(id)!;
    const stage = byId.get(id);
    const w = stage ? NODE_W : END_W;
    const h = stage ? nodeHeight(stage, state?.[stage.stage_order]) : END_H;
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
  const size = g.graph();
  return { nodes, edges, width: size.width ?? 0, height: size.height ?? 0 };
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
        {hasSkip(stage) && (
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
        <People label="approved" users={state?.approvers} />
        <People label="rejected" users={state?.rejected} />
        <People label="abstained" users={state?.abstained} />
        <People label="pending" users={state?.pending} />
        {state?.due_at && (
          <Text size="xs" c={state.overdue ? "red.9" : undefined} fw={state.overdue ? 600 : undefined}>
            {state.overdue ? "overdue since" : "due"} {formatDateTime(state.due_at)}
          </Text>
        )}
        {state?.error && (
          <Text size="xs" c="red.9" truncate="end" title={state.error}>
            {state.error}
          </Text>
        )}
      </Stack>
      <Handle type="source" position={Position.Right} isConnectable={false} />
    </Paper>
  );
}

function People({ label, users }: { label: string; users: string[] | undefined }) {
  if (!some(users)) return null;
  return (
    <Text size="xs" truncate="end" title={users.join(", ")}>
      {label}: {users.join(", ")}
    </Text>
  );
}

function EndNode({ data }: NodeProps) {
  const { label } = data as EndNodeData;
  return (
    <Paper withBorder radius="xl" h="100%" style={{ display: "flex", alignItems: "center", justifyContent: "center" }} bg="gray.1">
      {label === "End" && <Handle type="target" position={Position.Left} isConnectable={false} />}
      <Text size="xs" fw={600}>
        {label}
      </Text>
      {label === "Start" && <Handle type="source" position={Position.Right} isConnectable={false} />}
    </Paper>
  );
}

const nodeTypes = { stage: StageNode, end: EndNode };

export interface StageLine {
  text: string;
  current: boolean;
}

/** A text version of the picture, for screen readers (the graph itself is not navigable). */
export function describeStages(stages: GraphStage[], state?: Record<number, StageState>): StageLine[] {
  return columns(stages).map((col) => ({
    text: col
      .map((s) => {
        const st = state?.[s.stage_order];
        const parts = [`Stage ${s.stage_order} ${s.name}: ${modeText(s)}`];
        if (hasSkip(s)) parts.push(`skipped if ${compactJson(s.skip_if)}`);
        if (s.sla_hours) parts.push(`SLA ${formatHours(s.sla_hours)}${s.on_breach ? `, then ${s.on_breach.replace("_", " ")}` : ""}`);
        if (st?.status) parts.push(`status ${st.status}${st.current ? " (current)" : ""}`);
        if (some(st?.approvers)) parts.push(`approved by ${st.approvers.join(", ")}`);
        if (some(st?.rejected)) parts.push(`rejected by ${st.rejected.join(", ")}`);
        if (some(st?.abstained)) parts.push(`abstained: ${st.abstained.join(", ")}`);
        if (some(st?.pending)) parts.push(`pending ${st.pending.join(", ")}`);
        if (st?.due_at) parts.push(`${st.overdue ? "overdue since" : "due"} ${formatDateTime(st.due_at)}`);
        if (st?.error) parts.push(`not resolved: ${st.error}`);
        return parts.join(", ");
      })
      .join(" — in parallel with — "),
    current: col.some((s) => !!state?.[s.stage_order]?.current),
  }));
}

export interface StageGraphProps {
  stages: GraphStage[];
  state?: Record<number, StageState>;
  /** The picture's accessible name. */
  label?: string;
}

/** The smallest zoom at which node text stays readable; a wider graph scrolls sideways instead. */
const READABLE_ZOOM = 0.7;

/**
 * The picture is an `img` (named by `label`) whose drawing is hidden from assistive technology;
 * the same facts follow it as a visually hidden ordered list, the current stage marked with
 * aria-current. The drawing is static (no pan or zoom, so the page scrolls over it) and fitted to
 * its box, which is never narrower than the graph at a readable zoom: in a narrow window it
 * scrolls sideways, and then it takes the keyboard focus so arrow keys scroll it too. It is
 * rebuilt when the layout changes, so it is fitted again.
 */
export function StageGraph({ stages, state, label = "Policy diagram" }: StageGraphProps) {
  const { nodes, edges, width, height } = useMemo(() => layout(stages, state), [stages, state]);
  const description = useMemo(() => describeStages(stages, state), [stages, state]);
  const { ref, width: boxWidth } = useElementSize();
  const minWidth = Math.round(width * READABLE_ZOOM);
  const scrolls = boxWidth > 0 && boxWidth < minWidth;
  const boxHeight = Math.min(Math.max(height + 32, 160), 560);
  const fitKey = nodes.map((n) => `${n.id}:${Math.round(n.position.x)}:${Math.round(n.position.y)}:${String(n.style?.height)}`).join("|");
  return (
    <Box component="figure" m={0} aria-label={label}>
      <Box
        ref={ref}
        role="img"
        aria-label={label}
        tabIndex={scrolls ? 0 : undefined}
        style={{ border: "1px solid var(--mantine-color-gray-3)", borderRadius: 8, overflowX: "auto", overflowY: "hidden" }}
      >
        <Box aria-hidden h={boxHeight} miw={minWidth}>
          <ReactFlow
            key={fitKey}
            nodes={nodes}
            edges={edges}
            nodeTypes={nodeTypes}
            fitView
            fitViewOptions={{ padding: 0.05, maxZoom: 1 }}
            nodesDraggable={false}
            nodesConnectable={false}
            elementsSelectable={false}
            nodesFocusable={false}
            edgesFocusable={false}
            panOnDrag={false}
            panOnScroll={false}
            zoomOnScroll={false}
            zoomOnPinch={false}
            zoomOnDoubleClick={false}
            preventScrolling={false}
            proOptions={{ hideAttribution: true }}
            minZoom={0.2}
          >
            <Background gap={16} />
          </ReactFlow>
        </Box>
      </Box>
      <VisuallyHidden component="figcaption">
        <ol aria-label="Stages">
          {description.map((d) => (
            <li key={d.text} aria-current={d.current ? "step" : undefined}>
              {d.text}
            </li>
          ))}
        </ol>
      </VisuallyHidden>
      {stages.length === 0 && (
        <Text size="sm" c="dimmed" mt="xs">
          No stages: requests are approved at once.
        </Text>
      )}
    </Box>
  );
}
