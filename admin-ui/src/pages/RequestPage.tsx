import {
  Anchor,
  Button,
  Code,
  CopyButton,
  Group,
  Modal,
  Paper,
  SimpleGrid,
  Stack,
  Table,
  Text,
  Textarea,
  TextInput,
  Timeline,
  Title,
  VisuallyHidden,
} from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useParams } from "@tanstack/react-router";
import { useMemo, useState, type ReactNode } from "react";

import {
  useCancelRequest,
  useDiagramLink,
  useEvidence,
  useReassign,
  useRequest,
  useRequestDeliveries,
  useRequestEvents,
  useRequestTasks,
  useVerifyChain,
} from "../api/operations";
import { usePolicyVersion } from "../api/policies";
import type { EventOut, PolicyOut, RequestOut, TaskOut } from "../api/schema";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { DeliveryTable } from "../components/DeliveryTable";
import { AnchorLink } from "../components/links";
import { PageHeader } from "../components/PageHeader";
import { ProblemAlert } from "../components/ProblemAlert";
import { EmptyState, ErrorState, LoadingState, QueryState } from "../components/States";
import { StageGraph, type GraphStage, type StageState } from "../components/StageGraph";
import { StatusBadge } from "../components/StatusBadge";
import { formatDateTime } from "../lib/format";
import { canOperate, isAdmin } from "../lib/session";
import { useSession } from "../lib/useSession";

const TERMINAL = new Set(["approved", "rejected", "cancelled", "expired"]);
const LIVE_TASK = new Set(["open", "claimed"]);

/** One request: its h1 is `{artifact_type} {artifact_id}` (UI.md). */
export function RequestPage() {
  const { id } = useParams({ from: "/app/requests/$id" });
  const request = useRequest(id);
  if (request.isPending) return <LoadingState label="Loading the request" />;
  if (request.isError)
    return (
      <>
        <PageHeader title="Request" />
        <ErrorState error={request.error} onRetry={() => void request.refetch()} />
      </>
    );
  return <RequestView request={request.data} />;
}

function Section({ title, actions, children }: { title: string; actions?: ReactNode; children: ReactNode }) {
  const headingId = `section-${title.toLowerCase().replace(/\W+/g, "-")}`;
  return (
    <Paper withBorder p="md" component="section" aria-labelledby={headingId}>
      <Group justify="space-between" mb="sm" wrap="wrap" gap="xs">
        <Title order={2} size="h4" id={headingId}>
          {title}
        </Title>
        {actions && <Group gap="xs">{actions}</Group>}
      </Group>
      {children}
    </Paper>
  );
}

function RequestView({ request }: { request: RequestOut }) {
  const session = useSession();
  const operator = canOperate(session);
  const tasks = useRequestTasks(request.id);
  const deliveries = useRequestDeliveries(request.id, operator);
  const terminal = TERMINAL.has(request.status);
  const mayCancel =
    !terminal && (isAdmin(session) || session?.user === request.requester || session?.user === request.source_service);

  return (
    <Stack gap="md">
      <PageHeader
        title={`${request.artifact_type} ${request.artifact_id}`}
        subtitle={`Request ${request.id}`}
        actions={
          <>
            <EvidenceButton id={request.id} />
            <DiagramLinkButton id={request.id} />
            {mayCancel && <CancelButton id={request.id} />}
          </>
        }
      />
      <SimpleGrid cols={{ base: 1, md: 2 }} spacing="md">
        <Section title="Summary">
          <Table variant="vertical" layout="fixed" withTableBorder={false} fz="sm">
            <Table.Tbody>
              <Row label="Status">
                <StatusBadge status={request.status} />
                {request.outcome_reason && <Text size="sm">{request.outcome_reason}</Text>}
              </Row>
              <Row label="Policy">
                <AnchorLink
                  to="/policies/$key/versions/$version"
                  params={{ key: request.policy_key, version: String(request.policy_version) }}
                >
                  {request.policy_key} v{request.policy_version}
                </AnchorLink>
              </Row>
              <Row label="Requester">{request.requester}</Row>
              <Row label="Created by">
                {request.source_service}
                {request.source_client !== request.source_service && ` (caller ${request.source_client})`}
              </Row>
              <Row label="Created">{formatDateTime(request.created_at)}</Row>
              <Row label="Completed">{formatDateTime(request.completed_at)}</Row>
              <Row label="Callback">
                <Text size="sm" ff="monospace" style={{ wordBreak: "break-all" }}>
                  {request.callback_url ?? "—"}
                </Text>
              </Row>
            </Table.Tbody>
          </Table>
        </Section>
        <Section title="Context">
          <Code block style={{ maxHeight: 280, overflow: "auto" }}>
            {JSON.stringify(request.context, null, 2)}
          </Code>
          {Object.keys(request.metadata ?? {}).length > 0 && (
            <>
              <Text size="sm" fw={600} mt="sm">
                Metadata
              </Text>
              <Code block>{JSON.stringify(request.metadata, null, 2)}</Code>
            </>
          )}
        </Section>
      </SimpleGrid>
      <Section title="Diagram">
        <RequestDiagram request={request} tasks={tasks.data?.items} operator={operator} />
      </Section>
      <Section title="Tasks">
        <QueryState query={tasks} loadingLabel="Loading tasks" isEmpty={(d) => d.items.length === 0} empty={<EmptyState title="No tasks" />}>
          {(page) => <TaskTable request={request} tasks={page.items} canReassign={isAdmin(session) && !terminal} />}
        </QueryState>
      </Section>
      <TimelineSection id={request.id} />
      {operator && (
        <Section title="Deliveries">
          <QueryState
            query={deliveries}
            loadingLabel="Loading deliveries"
            isEmpty={(d) => d.length === 0}
            empty={<EmptyState title="No deliveries">This request has no callback URL, or nothing was sent yet.</EmptyState>}
          >
            {(rows) => <DeliveryTable deliveries={rows} canRetry={isAdmin(session)} showRequest={false} />}
          </QueryState>
        </Section>
      )}
    </Stack>
  );
}

function Row({ label, children }: { label: string; children: ReactNode }) {
  return (
    <Table.Tr>
      <Table.Th w={130}>{label}</Table.Th>
      <Table.Td>{children}</Table.Td>
    </Table.Tr>
  );
}

// ---- diagram --------------------------------------------------------------------------------

const LIVE_STAGE = new Set(["active", "resolving"]);

/**
 * What the policy diagram's nodes need from a request: its stages (with the skip conditions and
 * SLAs of the pinned version, when the principal may read it) and, per stage, the status, who
 * decided what, who is still to decide, an open stage's due date (overdue or not) and why a
 * stage is not resolved yet.
 */
export function requestGraph(
  request: RequestOut,
  tasks: TaskOut[],
  pinned?: PolicyOut,
  now: number = Date.now(),
): { stages: GraphStage[]; state: Record<number, StageState> } {
  const policyStages = new Map((pinned?.stages ?? []).map((s) => [s.stage_order, s]));
  const terminal = TERMINAL.has(request.status);
  const live = request.stages.filter((s) => LIVE_STAGE.has(s.status)).map((s) => s.stage_order);
  // Every stage of a running parallel group is current; the request's pointer when none is live.
  const current = new Set(terminal ? [] : live.length ? live : [request.current_stage_order]);
  const stages: GraphStage[] = request.stages.map((s) => {
    const p = policyStages.get(s.stage_order);
    return {
      stage_order: s.stage_order,
      name: s.name,
      mode: s.mode,
      mode_value: s.mode_value,
      parallel_group: s.parallel_group,
      veto: p?.veto ?? null,
      skip_if: p?.skip_if ?? null,
      sla_hours: p?.sla_hours ?? null,
      on_breach: p?.on_breach ?? null,
    };
  });
  const state: Record<number, StageState> = {};
  for (const s of request.stages) {
    const mine = tasks.filter((t) => t.stage_order === s.stage_order && t.kind === "approver" && t.status !== "reassigned");
    // A due date matters while the stage is open (a decided stage keeps its old one).
    const due = LIVE_STAGE.has(s.status) && !terminal ? s.due_at : null;
    const by = (action: string) => mine.filter((t) => t.decision_action === action).map((t) => t.assignee);
    state[s.stage_order] = {
      status: s.status,
      current: current.has(s.stage_order),
      approvers: by("approve"),
      rejected: by("reject"),
      abstained: by("abstain"),
      pending: mine.filter((t) => LIVE_TASK.has(t.status)).map((t) => t.assignee),
      due_at: due,
      overdue: due !== null && new Date(due).getTime() <= now,
      error: s.status === "resolving" ? s.resolution_error : null,
    };
  }
  return { stages, state };
}

/**
 * The request's stages drawn as the policy diagram is (components/StageGraph), coloured by
 * status, with a text list for screen readers. The service's SVG of the same picture is what
 * the signed `Diagram link` serves (ADR 0024).
 */
function RequestDiagram({ request, tasks, operator }: { request: RequestOut; tasks: TaskOut[] | undefined; operator: boolean }) {
  // Skip conditions and SLAs live in the pinned version, which only admins and viewers may read.
  const pinned = usePolicyVersion(request.policy_key, operator ? request.policy_version : undefined);
  const graph = useMemo(() => requestGraph(request, tasks ?? [], pinned.data), [request, tasks, pinned.data]);
  if (operator && pinned.isPending) return <LoadingState label="Drawing the diagram" />;
  return (
    <Stack gap="xs">
      <StageGraph stages={graph.stages} state={graph.state} label="Workflow diagram" />
      {operator && pinned.isError && (
        <Text size="xs" c="dimmed">
          The pinned policy version could not be read, so skip conditions and SLAs are not shown.
        </Text>
      )}
    </Stack>
  );
}

// ---- tasks ----------------------------------------------------------------------------------

function TaskTable({ request, tasks, canReassign }: { request: RequestOut; tasks: TaskOut[]; canReassign: boolean }) {
  const [target, setTarget] = useState<TaskOut | null>(null);
  const sorted = [...tasks].sort((a, b) => a.stage_order - b.stage_order || a.created_at.localeCompare(b.created_at));
  return (
    <>
      <Table.ScrollContainer minWidth={720}>
        <Table striped aria-label="Tasks" fz="sm" data-stack>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Stage</Table.Th>
              <Table.Th>Assignee</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Due</Table.Th>
              <Table.Th>Decision</Table.Th>
              {canReassign && (
                <Table.Th>
                  <VisuallyHidden>Actions</VisuallyHidden>
                </Table.Th>
              )}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {sorted.map((t) => (
              <Table.Tr key={t.id}>
                <Table.Td data-label="Stage">{t.stage_order}</Table.Td>
                <Table.Td data-label="Assignee">
                  {t.assignee}
                  {t.kind === "observer" && <Text span c="dimmed"> (observer)</Text>}
                  {t.delegated_from && <Text size="xs" c="dimmed">for {t.delegated_from}</Text>}
                  {t.reassigned_from && <Text size="xs" c="dimmed">was {t.reassigned_from}</Text>}
                </Table.Td>
                <Table.Td data-label="Status">
                  <StatusBadge status={t.status} />
                </Table.Td>
                <Table.Td data-label="Due">{formatDateTime(t.due_at)}</Table.Td>
                <Table.Td data-label="Decision">
                  {t.decision_action ? (
                    <>
                      <StatusBadge status={t.decision_action} />
                      {t.decision_comment && <Text size="xs">“{t.decision_comment}”</Text>}
                    </>
                  ) : (
                    "—"
                  )}
                </Table.Td>
                {canReassign && (
                  <Table.Td>
                    {LIVE_TASK.has(t.status) && (
                      <Button size="xs" variant="default" onClick={() => setTarget(t)}>
                        Reassign
                      </Button>
                    )}
                  </Table.Td>
                )}
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {target && <ReassignDialog requestId={request.id} task={target} onClose={() => setTarget(null)} />}
    </>
  );
}

function ReassignDialog({ requestId, task, onClose }: { requestId: string; task: TaskOut; onClose: () => void }) {
  const reassign = useReassign(requestId);
  const [assignee, setAssignee] = useState("");
  const [reason, setReason] = useState("");
  return (
    <ConfirmDialog
      opened
      title={`Reassign ${task.assignee}'s task`}
      confirmLabel="Reassign task"
      color="blue"
      loading={reassign.isPending}
      confirmDisabled={assignee.trim() === ""}
      onClose={onClose}
      onConfirm={() =>
        reassign.mutate(
          { taskId: task.id, newAssignee: assignee.trim(), reason: reason.trim() || null },
          {
            onSuccess: (t) => {
              notifications.show({ color: "green", message: `Task reassigned to ${t.assignee}` });
              onClose();
            },
          },
        )
      }
    >
      <TextInput label="New assignee" required value={assignee} onChange={(e) => setAssignee(e.currentTarget.value)} data-autofocus />
      <Textarea label="Reason" value={reason} onChange={(e) => setReason(e.currentTarget.value)} autosize minRows={2} />
      <ProblemAlert error={reassign.error} />
    </ConfirmDialog>
  );
}

// ---- timeline -------------------------------------------------------------------------------

function eventSummary(e: EventOut): string | null {
  const p = e.payload as Record<string, unknown>;
  const parts: string[] = [];
  if (typeof p.stage_order === "number") parts.push(`stage ${p.stage_order}`);
  if (typeof p.action === "string") parts.push(p.action);
  if (typeof p.assignee === "string") parts.push(`assignee ${p.assignee}`);
  if (Array.isArray(p.approvers)) parts.push(`approvers ${p.approvers.join(", ")}`);
  if (typeof p.comment === "string" && p.comment) parts.push(`“${p.comment}”`);
  if (typeof p.reason === "string" && p.reason) parts.push(`reason: ${p.reason}`);
  return parts.length ? parts.join(" · ") : null;
}

function TimelineSection({ id }: { id: string }) {
  const events = useRequestEvents(id);
  const verify = useVerifyChain(id);
  const result = verify.data;
  return (
    <Section
      title="Timeline"
      actions={
        <Button size="xs" variant="light" onClick={() => verify.mutate()} loading={verify.isPending}>
          Verify chain
        </Button>
      }
    >
      <div aria-live="polite">
        {result &&
          (result.valid ? (
            <Text c="green.9" fw={600} mb="sm">
              Chain valid ({result.count} events)
            </Text>
          ) : (
            <Text c="red.9" fw={600} mb="sm">
              Chain broken at event {result.broken_at_sequence ?? "?"} (of {result.count})
            </Text>
          ))}
        {verify.isError && <ProblemAlert error={verify.error} title="Verification failed" />}
      </div>
      <QueryState query={events} loadingLabel="Loading the timeline" isEmpty={(d) => d.length === 0} empty={<EmptyState title="No events" />}>
        {(rows) => (
          <Timeline active={rows.length - 1} bulletSize={14} lineWidth={2} aria-label="Events">
            {rows.map((e) => {
              const summary = eventSummary(e);
              const broken = result && !result.valid && result.broken_at_sequence === e.sequence;
              return (
                <Timeline.Item
                  key={e.id}
                  color={broken ? "red" : undefined}
                  title={
                    <Text size="sm" fw={600}>
                      {e.sequence}. {e.event_type.replace(/_/g, " ")}
                    </Text>
                  }
                >
                  <Text size="xs" c="dimmed">
                    {formatDateTime(e.created_at)} · {e.actor}
                  </Text>
                  {summary && <Text size="sm">{summary}</Text>}
                  <details>
                    <summary style={{ cursor: "pointer", fontSize: 12 }}>Payload and hash</summary>
                    <Code block fz="xs">
                      {JSON.stringify(e.payload, null, 2)}
                    </Code>
                    <Text size="xs" ff="monospace" style={{ wordBreak: "break-all" }}>
                      hash {e.hash}
                      <br />
                      prev {e.prev_hash}
                    </Text>
                  </details>
                </Timeline.Item>
              );
            })}
          </Timeline>
        )}
      </QueryState>
    </Section>
  );
}

// ---- actions --------------------------------------------------------------------------------

function EvidenceButton({ id }: { id: string }) {
  const evidence = useEvidence(id);
  return (
    <>
      <Button
        variant="default"
        loading={evidence.isPending}
        onClick={() =>
          evidence.mutate(undefined, {
            onSuccess: (blob) => {
              const url = URL.createObjectURL(blob);
              const a = document.createElement("a");
              a.href = url;
              a.download = `evidence-${id}.json`;
              document.body.appendChild(a);
              a.click();
              a.remove();
              setTimeout(() => URL.revokeObjectURL(url), 10_000);
            },
            onError: (error) =>
              notifications.show({ color: "red", title: "Evidence not downloaded", message: error.message }),
          })
        }
      >
        Evidence
      </Button>
    </>
  );
}

function DiagramLinkButton({ id }: { id: string }) {
  const link = useDiagramLink(id);
  const [opened, setOpened] = useState(false);
  return (
    <>
      <Button
        variant="default"
        onClick={() => {
          setOpened(true);
          link.mutate();
        }}
      >
        Diagram link
      </Button>
      <Modal opened={opened} onClose={() => setOpened(false)} title="Signed diagram link" centered size="lg">
        {link.isPending && <LoadingState label="Signing the link" />}
        <ProblemAlert error={link.error} />
        {link.data && (
          <Stack gap="sm">
            <Text size="sm">
              Anyone with this link sees this request's diagram, without signing in, until {formatDateTime(link.data.expires_at)}.
            </Text>
            <TextInput label="Diagram link" readOnly value={link.data.url} onFocus={(e) => e.currentTarget.select()} />
            <Group gap="xs">
              <CopyButton value={link.data.url}>
                {({ copied, copy }) => (
                  <Button onClick={copy} color={copied ? "green" : undefined}>
                    {copied ? "Copied" : "Copy link"}
                  </Button>
                )}
              </CopyButton>
              <Anchor href={link.data.url} target="_blank" rel="noreferrer">
                Open
              </Anchor>
            </Group>
          </Stack>
        )}
      </Modal>
    </>
  );
}

function CancelButton({ id }: { id: string }) {
  const cancel = useCancelRequest(id);
  const [opened, setOpened] = useState(false);
  const [reason, setReason] = useState("");
  return (
    <>
      <Button color="red" variant="light" onClick={() => setOpened(true)}>
        Cancel request
      </Button>
      <ConfirmDialog
        opened={opened}
        title="Cancel this request?"
        confirmLabel="Confirm cancel"
        cancelLabel="Keep it"
        loading={cancel.isPending}
        onClose={() => setOpened(false)}
        onConfirm={() =>
          cancel.mutate(reason.trim() || null, {
            onSuccess: () => {
              setOpened(false);
              notifications.show({ color: "green", message: "Request cancelled" });
            },
          })
        }
      >
        <Text size="sm">Open tasks are skipped and the caller is notified. This cannot be undone.</Text>
        <Textarea label="Reason" value={reason} onChange={(e) => setReason(e.currentTarget.value)} autosize minRows={2} data-autofocus />
        <ProblemAlert error={cancel.error} />
      </ConfirmDialog>
    </>
  );
}
