import {
  Anchor,
  Badge,
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
import { useEffect, useState, type ReactNode } from "react";

import {
  useCancelRequest,
  useDiagramLink,
  useEvidence,
  useReassign,
  useRequest,
  useRequestDeliveries,
  useRequestEvents,
  useRequestSvg,
  useRequestTasks,
  useVerifyChain,
} from "../api/operations";
import type { EventOut, RequestOut, TaskOut } from "../api/schema";
import { DeliveryTable } from "../components/DeliveryTable";
import { AnchorLink } from "../components/links";
import { PageHeader } from "../components/PageHeader";
import { ProblemAlert } from "../components/ProblemAlert";
import { EmptyState, ErrorState, LoadingState, QueryState } from "../components/States";
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
        <RequestDiagram request={request} tasks={tasks.data?.items ?? []} />
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

const STAGE_COLOURS: Record<string, string> = {
  approved: "green",
  rejected: "red",
  active: "blue",
  resolving: "orange",
  skipped: "gray",
  cancelled: "dark",
  pending: "gray",
};

/**
 * The request's stages: the service's SVG (the same picture a caller UI embeds through the signed
 * link) and, for screen readers and narrow windows, each stage with its approvers and due date.
 */
function RequestDiagram({ request, tasks }: { request: RequestOut; tasks: TaskOut[] }) {
  const svg = useRequestSvg(request.id, request.updated_at);
  const [src, setSrc] = useState<string | null>(null);
  useEffect(() => {
    if (!svg.data) return;
    const url = URL.createObjectURL(svg.data);
    setSrc(url);
    return () => URL.revokeObjectURL(url);
  }, [svg.data]);

  const stages = [...request.stages].sort((a, b) => a.stage_order - b.stage_order);
  return (
    <Stack gap="sm">
      {svg.isError ? (
        <ProblemAlert error={svg.error} title="The diagram could not be drawn" />
      ) : src ? (
        <div style={{ overflowX: "auto" }}>
          <img src={src} alt="Workflow diagram" style={{ display: "block", maxWidth: "100%", height: "auto", minWidth: 480 }} />
        </div>
      ) : (
        <LoadingState label="Drawing the diagram" />
      )}
      <SimpleGrid cols={{ base: 1, sm: 2, lg: 3 }} spacing="sm" aria-label="Stages">
        {stages.map((s) => {
          const current = s.stage_order === request.current_stage_order && !TERMINAL.has(request.status);
          const people = tasks.filter((t) => t.stage_order === s.stage_order && t.kind === "approver" && t.status !== "reassigned");
          return (
            <Paper
              key={s.stage_order}
              withBorder
              p="sm"
              style={current ? { borderColor: "var(--mantine-color-blue-7)", borderWidth: 2 } : undefined}
              aria-current={current ? "step" : undefined}
            >
              <Group justify="space-between" gap="xs" wrap="nowrap">
                <Text fw={600} size="sm">
                  {s.stage_order}. {s.name}
                </Text>
                <Badge color={STAGE_COLOURS[s.status] ?? "blue"} variant="dot" c="dark.7">
                  {s.status}
                </Badge>
              </Group>
              <Text size="xs" c="dimmed">
                {s.mode}
                {s.mode_value !== null && ` ${s.mode_value}`}
                {s.parallel_group !== null && ` · parallel group ${s.parallel_group}`}
                {current && " · current stage"}
              </Text>
              <Text size="xs">
                {s.counts.approve} approved · {s.counts.reject} rejected · {s.counts.abstain} abstained · {s.counts.open} open
              </Text>
              {s.due_at && <Text size="xs">Due {formatDateTime(s.due_at)}</Text>}
              {people.length > 0 && (
                <Text size="xs" mt={4}>
                  {people.map((t) => `${t.assignee} (${t.decision_action ?? t.status})`).join(", ")}
                </Text>
              )}
            </Paper>
          );
        })}
      </SimpleGrid>
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
        <Table striped aria-label="Tasks" fz="sm">
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
                <Table.Td>{t.stage_order}</Table.Td>
                <Table.Td>
                  {t.assignee}
                  {t.kind === "observer" && <Text span c="dimmed"> (observer)</Text>}
                  {t.delegated_from && <Text size="xs" c="dimmed">for {t.delegated_from}</Text>}
                  {t.reassigned_from && <Text size="xs" c="dimmed">was {t.reassigned_from}</Text>}
                </Table.Td>
                <Table.Td>
                  <StatusBadge status={t.status} />
                </Table.Td>
                <Table.Td>{formatDateTime(t.due_at)}</Table.Td>
                <Table.Td>
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
    <Modal opened onClose={onClose} title={`Reassign ${task.assignee}'s task`} centered>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          reassign.mutate(
            { taskId: task.id, newAssignee: assignee.trim(), reason: reason.trim() || null },
            {
              onSuccess: (t) => {
                notifications.show({ color: "green", message: `Task reassigned to ${t.assignee}` });
                onClose();
              },
            },
          );
        }}
      >
        <Stack gap="sm">
          <TextInput label="New assignee" required value={assignee} onChange={(e) => setAssignee(e.currentTarget.value)} data-autofocus />
          <Textarea label="Reason" value={reason} onChange={(e) => setReason(e.currentTarget.value)} autosize minRows={2} />
          <ProblemAlert error={reassign.error} />
          <Group justify="flex-end" gap="xs">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={reassign.isPending} disabled={assignee.trim() === ""}>
              Reassign task
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
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
      <Modal opened={opened} onClose={() => setOpened(false)} title="Cancel this request?" centered>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            cancel.mutate(reason.trim() || null, {
              onSuccess: () => {
                setOpened(false);
                notifications.show({ color: "green", message: "Request cancelled" });
              },
            });
          }}
        >
          <Stack gap="sm">
            <Text size="sm">Open tasks are skipped and the caller is notified. This cannot be undone.</Text>
            <Textarea label="Reason" value={reason} onChange={(e) => setReason(e.currentTarget.value)} autosize minRows={2} data-autofocus />
            <ProblemAlert error={cancel.error} />
            <Group justify="flex-end" gap="xs">
              <Button variant="default" onClick={() => setOpened(false)}>
                Keep it
              </Button>
              <Button type="submit" color="red" loading={cancel.isPending}>
                Confirm cancel
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
    </>
  );
}
