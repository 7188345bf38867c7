import { Alert, Button, Code, Group, Pagination, Paper, SegmentedControl, Stack, Text, Textarea } from "@mantine/core";
import { useState } from "react";

import { useDecide, useTasks, type DecisionAction } from "../api/operations";
import type { DecisionOut, TaskOut } from "../api/schema";
import { FilterText } from "../components/Filters";
import { AnchorLink } from "../components/links";
import { PageHeader } from "../components/PageHeader";
import { ProblemAlert } from "../components/ProblemAlert";
import { EmptyState, QueryState } from "../components/States";
import { StatusBadge } from "../components/StatusBadge";
import { formatDateTime } from "../lib/format";
import { ApiError } from "../lib/problem";
import { useUrlState } from "../lib/urlState";

const SHOW = {
  open: { label: "To do", status: "open,claimed" },
  done: { label: "Done", status: "completed,skipped,expired,reassigned" },
  all: { label: "All", status: undefined },
} as const;
type Show = keyof typeof SHOW;

const ACTIONS: { action: DecisionAction; label: string; color?: string; variant: string }[] = [
  { action: "approve", label: "Approve", color: "green", variant: "filled" },
  { action: "reject", label: "Reject", color: "red", variant: "filled" },
  { action: "abstain", label: "Abstain", variant: "default" },
  { action: "request_changes", label: "Request changes", variant: "default" },
];

const PAST: Record<DecisionAction, string> = {
  approve: "Approved",
  reject: "Rejected",
  abstain: "Abstained on",
  request_changes: "Requested changes on",
};

interface Outcome {
  task: TaskOut;
  decision: DecisionOut;
}

/** The signed-in user's inbox (GET /v1/tasks, assignee=me) with a decision per task. */
export function TasksPage() {
  const [search, setSearch] = useUrlState();
  const show: Show = search.show === "done" || search.show === "all" ? search.show : "open";
  const page = Math.max(1, Number.parseInt(search.page ?? "1", 10) || 1);
  const tasks = useTasks({
    assignee: "me",
    status: SHOW[show].status,
    search_text: search.q,
    page,
    page_size: 10,
  });
  const [outcomes, setOutcomes] = useState<Outcome[]>([]);

  return (
    <>
      <PageHeader title="My tasks" subtitle="Approvals waiting for you, newest first." />
      <Group mb="md" gap="sm" align="flex-end" wrap="wrap">
        <SegmentedControl
          aria-label="Show"
          value={show}
          onChange={(v) => setSearch({ show: v === "open" ? undefined : v, page: undefined })}
          data={Object.entries(SHOW).map(([value, s]) => ({ value, label: s.label }))}
        />
        <FilterText
          label="Search"
          placeholder="Artifact id or context value"
          value={search.q}
          onCommit={(v) => setSearch({ q: v, page: undefined })}
          w={280}
        />
      </Group>
      <div aria-live="polite">
        {outcomes.length > 0 && (
          <Stack gap="xs" mb="md">
            {outcomes.slice(0, 3).map((o) => (
              <Alert
                key={o.decision.id}
                color="green"
                variant="light"
                withCloseButton
                closeButtonLabel="Dismiss"
                onClose={() => setOutcomes((list) => list.filter((x) => x.decision.id !== o.decision.id))}
              >
                {PAST[o.decision.action]} {o.task.artifact_type} {o.task.artifact_id} (stage {o.decision.stage_order}
                {o.decision.on_behalf_of ? `, for ${o.decision.on_behalf_of}` : ""}): stage {o.decision.stage_status.replace(/_/g, " ")}, request{" "}
                {o.decision.request_status.replace(/_/g, " ")}.{" "}
                <AnchorLink to="/requests/$id" params={{ id: o.decision.request_id }}>
                  View the request
                </AnchorLink>
              </Alert>
            ))}
          </Stack>
        )}
      </div>
      <QueryState
        query={tasks}
        loadingLabel="Loading your tasks"
        isEmpty={(d) => d.items.length === 0}
        empty={
          <EmptyState title={show === "open" ? "Nothing to decide" : "No tasks"}>
            {show === "open" ? "You have no open approval tasks." : "No task matches."}
          </EmptyState>
        }
      >
        {(data) => (
          <Stack gap="sm">
            {data.total !== null && data.total !== undefined && (
              <Text size="sm" c="dimmed">
                {data.total} {data.total === 1 ? "task" : "tasks"}
              </Text>
            )}
            {data.items.map((t) => (
              <TaskCard key={t.id} task={t} onDecided={(decision) => setOutcomes((list) => [{ task: t, decision }, ...list])} />
            ))}
            {(data.pages ?? 1) > 1 && (
              <Group justify="flex-end">
                <Pagination
                  total={data.pages ?? 1}
                  value={page}
                  onChange={(p) => setSearch({ page: p === 1 ? undefined : String(p) })}
                  getControlProps={(control) => ({ "aria-label": `${control} page` })}
                  getItemProps={(p) => ({ "aria-label": `Page ${p}` })}
                />
              </Group>
            )}
          </Stack>
        )}
      </QueryState>
    </>
  );
}

function TaskCard({ task, onDecided }: { task: TaskOut; onDecided: (d: DecisionOut) => void }) {
  const decide = useDecide();
  const [comment, setComment] = useState("");
  const live = task.status === "open" || task.status === "claimed";
  const overdue = task.due_at && new Date(task.due_at).getTime() < Date.now();
  const headingId = `task-${task.id}`;
  const conflict = decide.error instanceof ApiError && decide.error.status === 409;
  const forbidden = decide.error instanceof ApiError && decide.error.status === 403;
  return (
    <Paper withBorder p="md" component="article" aria-labelledby={headingId}>
      <Group justify="space-between" align="flex-start" wrap="wrap" gap="xs">
        <div>
          <Text fw={600} id={headingId}>
            <AnchorLink to="/requests/$id" params={{ id: task.request_id }}>
              {task.artifact_type} {task.artifact_id}
            </AnchorLink>
          </Text>
          <Text size="sm" c="dimmed">
            {task.policy_key} · stage {task.stage_order}
            {task.kind === "observer" && " · observer (your decision does not count)"}
            {task.delegated_from && ` · delegated by ${task.delegated_from}`}
          </Text>
        </div>
        <Group gap="xs">
          <StatusBadge status={task.status} />
          {task.due_at && (
            <Text size="sm" c={overdue && live ? "red.8" : undefined}>
              {overdue && live ? "Overdue since" : "Due"} {formatDateTime(task.due_at)}
            </Text>
          )}
        </Group>
      </Group>
      {Object.keys(task.context ?? {}).length > 0 && (
        <Code block mt="xs" fz="xs" style={{ maxHeight: 160, overflow: "auto" }}>
          {JSON.stringify(task.context, null, 2)}
        </Code>
      )}
      {live ? (
        <Stack gap="xs" mt="sm">
          <Textarea
            label="Comment"
            placeholder="Optional; the requester and later approvers see it"
            autosize
            minRows={1}
            maxRows={6}
            value={comment}
            onChange={(e) => setComment(e.currentTarget.value)}
          />
          <Group gap="xs">
            {ACTIONS.map((a) => (
              <Button
                key={a.action}
                color={a.color}
                variant={a.variant}
                size="sm"
                loading={decide.isPending && decide.variables?.action === a.action}
                disabled={decide.isPending && decide.variables?.action !== a.action}
                onClick={() =>
                  decide.mutate(
                    { taskId: task.id, action: a.action, comment: comment.trim() || null },
                    { onSuccess: (decision) => onDecided(decision) },
                  )
                }
              >
                {a.label}
              </Button>
            ))}
          </Group>
          {decide.error !== null && (
            <ProblemAlert
              error={decide.error}
              title={forbidden ? "You may not decide this task" : conflict ? "This task can no longer be decided" : undefined}
            />
          )}
        </Stack>
      ) : (
        task.decision_action && (
          <Group gap="xs" mt="xs">
            <Text size="sm">Your decision:</Text>
            <StatusBadge status={task.decision_action} />
            <Text size="sm">
              {task.decision_comment && `“${task.decision_comment}” `}
              {formatDateTime(task.completed_at)}
            </Text>
          </Group>
        )
      )}
    </Paper>
  );
}
