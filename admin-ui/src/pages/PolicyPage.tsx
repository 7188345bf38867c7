import { Alert, Badge, Button, Code, Group, List, NativeSelect, NumberInput, Paper, SimpleGrid, Stack, Table, Tabs, Text, TextInput, Title } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useParams } from "@tanstack/react-router";
import { useState } from "react";

import { useActivate, useDeactivate, usePolicyDiff, usePolicyVersion, usePolicyVersions, useReplay, useSimulate } from "../api/policies";
import type { PolicyOut, ReplayOut, SimulatedStage, SimulateOut } from "../api/schema";
import { JsonEditor } from "../components/JsonEditor";
import { AnchorLink, ButtonLink } from "../components/links";
import { PageHeader } from "../components/PageHeader";
import { ProblemAlert } from "../components/ProblemAlert";
import { EmptyState, ErrorState, LoadingState, QueryState } from "../components/States";
import { StageGraph } from "../components/StageGraph";
import { StatusBadge } from "../components/StatusBadge";
import { compactJson, formatDateTime } from "../lib/format";
import { isAdmin } from "../lib/session";
import { useUrlState } from "../lib/urlState";
import { useSession } from "../lib/useSession";

const TABS = ["Versions", "Diagram", "Simulate", "Changes"] as const;
type Tab = (typeof TABS)[number];

/** A policy key: its versions (publish, deactivate, roll back, diff), diagram, simulation and replay. */
export function PolicyPage() {
  const { key } = useParams({ from: "/app/policies/$key" });
  const [search, setSearch] = useUrlState();
  const versions = usePolicyVersions(key);
  const newest = versions.data?.[0]?.version;
  const selected = search.version ? Number(search.version) : newest;
  const policy = usePolicyVersion(key, selected);
  const tab: Tab = TABS.includes(search.tab as Tab) ? (search.tab as Tab) : "Versions";

  if (versions.isPending) return <LoadingState label="Loading the policy" />;
  if (versions.isError) return <ErrorState error={versions.error} onRetry={() => void versions.refetch()} />;
  if (versions.data.length === 0) return <EmptyState title="No versions">This policy has no versions.</EmptyState>;

  const versionPicker = (
    <NativeSelect
      label="Version"
      w={220}
      value={String(selected ?? "")}
      onChange={(e) => setSearch({ version: e.currentTarget.value }, { keepCursor: true })}
      data={versions.data.map((v) => ({ value: String(v.version), label: `v${v.version} (${v.status})` }))}
    />
  );

  return (
    <>
      <PageHeader
        title={policy.data?.name ?? key}
        subtitle={
          <>
            <Code>{key}</Code> · {versions.data.length} version{versions.data.length === 1 ? "" : "s"}
          </>
        }
      />
      <Tabs value={tab} onChange={(t) => setSearch({ tab: t ?? undefined }, { keepCursor: true })} keepMounted={false}>
        <Tabs.List mb="md">
          {TABS.map((t) => (
            <Tabs.Tab key={t} value={t}>
              {t}
            </Tabs.Tab>
          ))}
        </Tabs.List>
        <Tabs.Panel value="Versions">
          <VersionsTab policyKey={key} />
        </Tabs.Panel>
        <Tabs.Panel value="Diagram">
          <Stack>
            {versionPicker}
            <QueryState query={policy} loadingLabel="Loading the version">
              {(p) => <StageGraph stages={p.stages ?? []} label={`Diagram of ${p.name} v${p.version}`} />}
            </QueryState>
          </Stack>
        </Tabs.Panel>
        <Tabs.Panel value="Simulate">
          <Stack>
            {versionPicker}
            <QueryState query={policy} loadingLabel="Loading the version">
              {(p) => <SimulateTab key={p.id} policy={p} />}
            </QueryState>
          </Stack>
        </Tabs.Panel>
        <Tabs.Panel value="Changes">
          <Stack>
            {versionPicker}
            <QueryState query={policy} loadingLabel="Loading the version">
              {(p) => <ChangesTab key={p.id} policy={p} />}
            </QueryState>
          </Stack>
        </Tabs.Panel>
      </Tabs>
    </>
  );
}

function VersionsTab({ policyKey }: { policyKey: string }) {
  const session = useSession();
  const versions = usePolicyVersions(policyKey);
  const activate = useActivate();
  const deactivate = useDeactivate();
  const rows = versions.data ?? [];
  const [a, setA] = useState<number | undefined>(rows[1]?.version);
  const [b, setB] = useState<number | undefined>(rows[0]?.version);
  const admin = isAdmin(session);
  const act = (fn: typeof activate, version: number, done: string) =>
    fn.mutate({ key: policyKey, version }, { onSuccess: () => notifications.show({ color: "green", title: done, message: `${policyKey} v${version}` }) });

  return (
    <Stack gap="lg">
      <ProblemAlert error={activate.error ?? deactivate.error} />
      <Table.ScrollContainer minWidth={560}>
        <Table striped>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Version</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th>By</Table.Th>
              <Table.Th>Actions</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {rows.map((v) => (
              <Table.Tr key={v.id}>
                <Table.Td>
                  <AnchorLink to="/policies/$key/versions/$version" params={{ key: policyKey, version: String(v.version) }}>
                    v{v.version}
                  </AnchorLink>
                </Table.Td>
                <Table.Td>
                  <StatusBadge status={v.status} />
                </Table.Td>
                <Table.Td>{formatDateTime(v.created_at)}</Table.Td>
                <Table.Td>{v.created_by}</Table.Td>
                <Table.Td>
                  <Group gap="xs" wrap="nowrap">
                    {admin && v.status === "draft" && (
                      <Button size="compact-sm" onClick={() => act(activate, v.version, "Published")} loading={activate.isPending} aria-label={`Publish v${v.version}`}>
                        Publish
                      </Button>
                    )}
                    {admin && v.status === "archived" && (
                      <Button size="compact-sm" variant="default" onClick={() => act(activate, v.version, "Rolled back")} loading={activate.isPending} aria-label={`Roll back to v${v.version}`}>
                        Roll back to this
                      </Button>
                    )}
                    {admin && v.status === "active" && (
                      <Button size="compact-sm" variant="default" color="red" onClick={() => act(deactivate, v.version, "Deactivated")} loading={deactivate.isPending} aria-label={`Deactivate v${v.version}`}>
                        Deactivate
                      </Button>
                    )}
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {admin && (
        <Group>
          <ButtonLink variant="default" to="/policies/$key/versions/$version" params={{ key: policyKey, version: String(rows[0]?.version ?? 1) }}>
            Open newest version
          </ButtonLink>
        </Group>
      )}
      <Paper withBorder p="md" radius="md">
        <Title order={2} size="h4" mb="sm">
          Compare versions
        </Title>
        {rows.length < 2 ? (
          <Text size="sm" c="dimmed">
            There is only one version.
          </Text>
        ) : (
          <Stack>
            <Group>
              {[
                ["From", a, setA],
                ["To", b, setB],
              ].map(([label, value, set]) => (
                <NativeSelect
                  key={label as string}
                  label={label as string}
                  value={String(value ?? "")}
                  onChange={(e) => (set as (n: number) => void)(Number(e.currentTarget.value))}
                  data={rows.map((v) => ({ value: String(v.version), label: `v${v.version} (${v.status})` }))}
                />
              ))}
            </Group>
            <DiffView policyKey={policyKey} a={a} b={b} />
          </Stack>
        )}
      </Paper>
    </Stack>
  );
}

const show = (v: unknown) => (v === undefined ? "—" : JSON.stringify(v, null, 2));

function DiffView({ policyKey, a, b }: { policyKey: string; a?: number; b?: number }) {
  const diff = usePolicyDiff(policyKey, a, b);
  if (!a || !b || a === b) return <Text size="sm" c="dimmed">Pick two different versions.</Text>;
  return (
    <QueryState query={diff} isEmpty={(d) => d.changes.length === 0} empty={<EmptyState title="No differences">The two versions are the same.</EmptyState>}>
      {(d) => (
        <Table.ScrollContainer minWidth={560}>
          <Table withColumnBorders aria-label={`Differences between v${a} and v${b}`} layout="fixed">
            <Table.Thead>
              <Table.Tr>
                <Table.Th w="24%">Field</Table.Th>
                <Table.Th>v{a}</Table.Th>
                <Table.Th>v{b}</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {d.changes.map((c) => (
                <Table.Tr key={c.pointer}>
                  <Table.Td>
                    <Code>{c.pointer}</Code>
                  </Table.Td>
                  <Table.Td bg="red.0">
                    <Text component="pre" size="xs" m={0} style={{ whiteSpace: "pre-wrap", wordBreak: "break-word" }}>
                      {show(c.before)}
                    </Text>
                  </Table.Td>
                  <Table.Td bg="green.0">
                    <Text component="pre" size="xs" m={0} style={{ whiteSpace: "pre-wrap", wordBreak: "break-word" }}>
                      {show(c.after)}
                    </Text>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </QueryState>
  );
}

function People({ label, users }: { label: string; users: string[] }) {
  if (users.length === 0) return null;
  return (
    <Text size="sm">
      <Text span fw={600}>
        {label}:
      </Text>{" "}
      {users.join(", ")}
    </Text>
  );
}

function StageResult({ stage }: { stage: SimulatedStage }) {
  const t = stage.trace;
  return (
    <Paper withBorder p="md" radius="md" role="group" aria-label={`Stage ${stage.stage_order} ${stage.name}`}>
      <Group justify="space-between" mb="xs">
        <Title order={3} size="h5">
          Stage {stage.stage_order}: {stage.name}
        </Title>
        {stage.skipped ? <Badge color="gray">skipped</Badge> : <Badge color="blue" variant="outline">{stage.mode}{stage.mode_value ? ` ${stage.mode_value}` : ""}</Badge>}
      </Group>
      {stage.skipped ? (
        <Text size="sm">
          Skipped{stage.skip_reason ? `: ${stage.skip_reason}` : ""}
          {t.skip_condition !== null && t.skip_condition !== undefined && (
            <>
              {" "}
              because <Code>{compactJson(t.skip_condition)}</Code> is true
            </>
          )}
        </Text>
      ) : (
        <Stack gap={4}>
          <Text size="sm">
            <Text span fw={600}>
              Resolved approvers:
            </Text>{" "}
            {stage.resolved_approvers.length ? stage.resolved_approvers.join(", ") : "nobody"}
          </Text>
          <People label="Required" users={stage.required_approvers} />
          <People label="Observers" users={stage.observers} />
          {t.skip_condition !== null && t.skip_condition !== undefined && (
            <Text size="sm">
              Skip condition <Code>{compactJson(t.skip_condition)}</Code> was false
            </Text>
          )}
        </Stack>
      )}
      {t.rules.length > 0 && (
        <Table mt="sm" aria-label={`Rules of stage ${stage.stage_order}`}>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Rule</Table.Th>
              <Table.Th>Value</Table.Th>
              <Table.Th>Resolved</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {t.rules.map((r) => (
              <Table.Tr key={r.index}>
                <Table.Td>
                  {r.index + 1}. {r.rule_type}
                  {r.kind === "observer" ? " (observer)" : ""}
                  {r.required ? " (required)" : ""}
                </Table.Td>
                <Table.Td>
                  <Code>{compactJson(r.rule_value)}</Code>
                </Table.Td>
                <Table.Td>{r.error ? <Text c="red.9" size="sm">{r.error}</Text> : r.resolved.length ? r.resolved.join(", ") : "nobody"}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {t.removed.length > 0 && (
        <Stack gap={2} mt="sm">
          <Text size="sm" fw={600}>
            Removed by separation of duties
          </Text>
          <List size="sm">
            {t.removed.map((r) => (
              <List.Item key={`${r.user_id}-${r.reason}`}>
                {r.user_id}: {r.detail}
              </List.Item>
            ))}
          </List>
        </Stack>
      )}
      {t.delegations.length > 0 && (
        <Stack gap={2} mt="sm">
          <Text size="sm" fw={600}>
            Delegations
          </Text>
          <List size="sm">
            {t.delegations.map((d) => (
              <List.Item key={d.delegation_id}>
                {d.user_id} → {d.delegate_to}
              </List.Item>
            ))}
          </List>
        </Stack>
      )}
    </Paper>
  );
}

function SimulateTab({ policy }: { policy: PolicyOut }) {
  const simulate = useSimulate();
  const [context, setContext] = useState('{\n  "amount": 500\n}');
  const [requester, setRequester] = useState("");
  const [parseError, setParseError] = useState<string[]>([]);
  const [result, setResult] = useState<SimulateOut | null>(null);

  const run = () => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(context || "{}");
    } catch (e) {
      setParseError([`Not valid JSON: ${e instanceof Error ? e.message : ""}`]);
      return;
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      setParseError(["The context is a JSON object"]);
      return;
    }
    setParseError([]);
    simulate.mutate(
      { key: policy.policy_key, version: policy.version, body: { context: parsed as Record<string, unknown>, requester: requester.trim() || null } },
      { onSuccess: setResult },
    );
  };
  const serverContextErrors = simulate.error ? [] : [];

  return (
    <SimpleGrid cols={{ base: 1, md: 2 }} spacing="lg">
      <Stack>
        <Text size="sm" c="dimmed">
          Resolve v{policy.version}'s approvers for a sample request, without creating anything.
        </Text>
        <JsonEditor label="Context" value={context} onChange={setContext} minHeight="160px" error={[...parseError, ...serverContextErrors]} />
        <TextInput label="Requester" description="The principal the request is made for (separation of duties)" value={requester} onChange={(e) => setRequester(e.currentTarget.value)} placeholder="alice" />
        <Group>
          <Button onClick={run} loading={simulate.isPending}>
            Simulate
          </Button>
        </Group>
        <ProblemAlert error={simulate.error} />
      </Stack>
      <Stack aria-live="polite">
        {result === null ? (
          <EmptyState title="No simulation yet">Edit the context and press Simulate.</EmptyState>
        ) : (
          <>
            <Group>
              <Text fw={600}>Outcome:</Text>
              <StatusBadge status={result.outcome} />
            </Group>
            {result.stages.length === 0 && <Text size="sm">No stages: the request would be approved at once.</Text>}
            {result.stages.map((s) => (
              <StageResult key={s.stage_order} stage={s} />
            ))}
          </>
        )}
      </Stack>
    </SimpleGrid>
  );
}

function ChangesTab({ policy }: { policy: PolicyOut }) {
  const replay = useReplay();
  const [limit, setLimit] = useState<number | string>(100);
  const [result, setResult] = useState<ReplayOut | null>(null);
  return (
    <Stack>
      <Text size="sm" c="dimmed">
        Replay the contexts of this policy's most recent requests through v{policy.version} and through the version each request used, and list the requests whose routing, approvers or outcome would change. Nothing is written.
      </Text>
      <Group align="flex-end">
        <NumberInput label="Requests to replay" min={1} max={1000} value={limit} onChange={setLimit} w={200} allowDecimal={false} />
        <Button onClick={() => replay.mutate({ key: policy.policy_key, version: policy.version, limit: Number(limit) || 100 }, { onSuccess: setResult })} loading={replay.isPending}>
          Replay
        </Button>
      </Group>
      <ProblemAlert error={replay.error} />
      {result && (
        <Stack aria-live="polite">
          <Text size="sm">
            Replayed {result.replayed} request{result.replayed === 1 ? "" : "s"}
            {result.compared_with ? ` (the active version is v${result.compared_with})` : ""}; {result.changed.length} would change.
            {result.truncated ? " More requests exist than were replayed." : ""}
          </Text>
          {result.changed.length === 0 ? (
            <EmptyState title="No changes">{result.replayed ? "Every replayed request would be routed and approved the same way." : "This policy has no requests yet."}</EmptyState>
          ) : (
            <Table.ScrollContainer minWidth={640}>
              <Table striped aria-label="Requests that would change">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Request</Table.Th>
                    <Table.Th>Before</Table.Th>
                    <Table.Th>After</Table.Th>
                    <Table.Th>Differences</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {result.changed.map((c) => (
                    <Table.Tr key={c.request_id}>
                      <Table.Td>
                        <AnchorLink to="/requests/$id" params={{ id: c.request_id }}>
                          {c.artifact_type} {c.artifact_id}
                        </AnchorLink>
                        <Text size="xs" c="dimmed">
                          {formatDateTime(c.created_at)}
                        </Text>
                      </Table.Td>
                      <Table.Td>
                        <StatusBadge status={c.before.outcome} /> {c.before.policy_key ? `${c.before.policy_key} v${c.before.version ?? "?"}` : ""}
                      </Table.Td>
                      <Table.Td>
                        <StatusBadge status={c.after.outcome} /> {c.after.policy_key ? `${c.after.policy_key} v${c.after.version ?? "?"}` : ""}
                      </Table.Td>
                      <Table.Td>
                        <List size="sm">
                          {c.differences.map((d, i) => (
                            <List.Item key={i}>
                              {d.stage_order ? `stage ${d.stage_order}: ` : ""}
                              {d.detail}
                            </List.Item>
                          ))}
                        </List>
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          )}
        </Stack>
      )}
      {!result && !replay.isPending && !replay.isError && <Alert variant="light" color="gray">Press Replay to compare.</Alert>}
    </Stack>
  );
}
