import { Autocomplete, Group, Paper, Select, SimpleGrid, Switch, Table, Text, TextInput } from "@mantine/core";
import { useEffect, useMemo } from "react";

import { useRequests, useStuckReasons, type RequestFilters } from "../api/operations";
import { usePolicies } from "../api/policies";
import { FilterText, localToIso, ShortId } from "../components/Filters";
import { AnchorLink } from "../components/links";
import { PageHeader } from "../components/PageHeader";
import { Pager, useCursorPager } from "../components/Pager";
import { EmptyState, QueryState } from "../components/States";
import { StatusBadge } from "../components/StatusBadge";
import { formatDateTime } from "../lib/format";
import { canOperate } from "../lib/session";
import { useSession } from "../lib/useSession";
import { useUrlState } from "../lib/urlState";

export const REQUEST_STATUSES = ["in_review", "changes_requested", "approved", "rejected", "cancelled", "expired"] as const;
type RequestStatus = (typeof REQUEST_STATUSES)[number];

/** Requests with filters in the query string (UI.md); `stuck=true` shows why each one is stuck. */
export function RequestsPage() {
  const session = useSession();
  const operator = canOperate(session);
  const [search, setSearch] = useUrlState();
  const pager = useCursorPager();
  const stuck = search.stuck === "true";

  const filters: RequestFilters = {
    status: REQUEST_STATUSES.includes(search.status as RequestStatus) ? (search.status as RequestStatus) : undefined,
    policy_key: search.policy_key,
    artifact_type: search.artifact_type,
    artifact_id: search.artifact_id,
    requester: search.requester,
    created_after: localToIso(search.created_after),
    created_before: localToIso(search.created_before),
    stuck: stuck ? true : undefined,
    limit: 25,
  };
  const filterKey = JSON.stringify(filters);
  // A different filter starts again on the first page.
  useEffect(() => pager.reset(), [filterKey, pager.reset]); // eslint-disable-line react-hooks/exhaustive-deps
  const requests = useRequests({ ...filters, cursor: pager.cursor });
  const policies = usePolicies();
  const reasons = useStuckReasons(stuck && operator);

  const why = useMemo(() => {
    const out = new Map<string, string>();
    for (const s of reasons.stages.data ?? []) {
      out.set(s.request_id, `Stage ${s.stage_order} (${s.name}) resolving: ${s.last_resolution_error ?? "waiting to retry"} (${s.resolution_attempts} tries)`);
    }
    for (const d of reasons.deliveries.data ?? []) {
      if (out.has(d.request_id)) continue;
      // The error starts with the status code ("HTTP 500: …"); without one, the code alone.
      const answer = d.last_error ?? (d.last_status_code ? `HTTP ${d.last_status_code}` : "no answer");
      out.set(d.request_id, `Delivery of ${d.event_type} exhausted: ${answer}`);
    }
    return out;
  }, [reasons.stages.data, reasons.deliveries.data]);

  const policyKeys = (policies.data ?? []).map((p) => p.policy_key);
  return (
    <>
      <PageHeader title="Requests" subtitle="Every approval request you may see, newest first." />
      <Paper withBorder p="sm" mb="md" component="form" role="search" aria-label="Filter requests" onSubmit={(e) => e.preventDefault()}>
        <SimpleGrid cols={{ base: 1, xs: 2, md: 4 }} spacing="sm">
          <Select
            label="Status"
            placeholder="Any"
            clearable
            data={REQUEST_STATUSES.map((s) => ({ value: s, label: s.replace(/_/g, " ") }))}
            value={search.status ?? null}
            onChange={(v) => setSearch({ status: v ?? undefined })}
          />
          {operator ? (
            <Autocomplete
              label="Policy"
              placeholder="Any policy key"
              data={policyKeys}
              value={search.policy_key ?? ""}
              onChange={(v) => {
                if (v === "" || policyKeys.includes(v)) setSearch({ policy_key: v });
              }}
              onBlur={(e) => setSearch({ policy_key: e.currentTarget.value.trim() })}
            />
          ) : (
            <FilterText label="Policy" placeholder="Any policy key" value={search.policy_key} onCommit={(v) => setSearch({ policy_key: v })} />
          )}
          <FilterText label="Artifact type" value={search.artifact_type} onCommit={(v) => setSearch({ artifact_type: v })} />
          <FilterText label="Artifact id" value={search.artifact_id} onCommit={(v) => setSearch({ artifact_id: v })} />
          <FilterText label="Requester" value={search.requester} onCommit={(v) => setSearch({ requester: v })} />
          <TextInput
            type="datetime-local"
            label="Created after"
            value={search.created_after ?? ""}
            onChange={(e) => setSearch({ created_after: e.currentTarget.value })}
          />
          <TextInput
            type="datetime-local"
            label="Created before"
            value={search.created_before ?? ""}
            onChange={(e) => setSearch({ created_before: e.currentTarget.value })}
          />
          <Group align="flex-end" pb={6}>
            <Switch
              label="Stuck only"
              description="Resolving stages or exhausted deliveries"
              checked={stuck}
              onChange={(e) => setSearch({ stuck: e.currentTarget.checked ? "true" : undefined })}
            />
          </Group>
        </SimpleGrid>
      </Paper>
      <QueryState
        query={requests}
        loadingLabel="Loading requests"
        isEmpty={(d) => d.items.length === 0}
        empty={
          <EmptyState title={stuck ? "Nothing is stuck" : "No requests match"}>
            {stuck ? "No stage is waiting for resolution and no delivery is exhausted." : "Change or clear the filters."}
          </EmptyState>
        }
      >
        {(page) => (
          <>
            <Table.ScrollContainer minWidth={760}>
              <Table striped highlightOnHover aria-label="Requests" data-stack>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Artifact</Table.Th>
                    <Table.Th>Status</Table.Th>
                    <Table.Th>Policy</Table.Th>
                    <Table.Th>Stage</Table.Th>
                    <Table.Th>Requester</Table.Th>
                    <Table.Th>Created</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {page.items.map((r) => {
                    const current = r.stages.find((s) => s.stage_order === r.current_stage_order);
                    const reason = why.get(r.id);
                    return (
                      <Table.Tr key={r.id}>
                        <Table.Td data-label="Artifact">
                          <AnchorLink to="/requests/$id" params={{ id: r.id }}>
                            {r.artifact_type} {r.artifact_id}
                          </AnchorLink>
                          <Text size="xs" c="dimmed">
                            <ShortId id={r.id} />
                          </Text>
                          {reason && (
                            <Text size="sm" c="red.9" mt={4}>
                              {reason}
                            </Text>
                          )}
                          {stuck && !reason && operator && !reasons.stages.isPending && (
                            <Text size="sm" c="dimmed" mt={4}>
                              Stuck (details on the request page)
                            </Text>
                          )}
                        </Table.Td>
                        <Table.Td data-label="Status">
                          <StatusBadge status={r.status} />
                        </Table.Td>
                        <Table.Td data-label="Policy">
                          <Text size="sm" ff="monospace">
                            {r.policy_key} v{r.policy_version}
                          </Text>
                        </Table.Td>
                        <Table.Td data-label="Stage">
                          {current ? (
                            <Group gap={6} wrap="nowrap">
                              <Text size="sm">
                                {current.stage_order}. {current.name}
                              </Text>
                              <StatusBadge status={current.status} />
                            </Group>
                          ) : (
                            "—"
                          )}
                        </Table.Td>
                        <Table.Td data-label="Requester">{r.requester}</Table.Td>
                        <Table.Td data-label="Created">{formatDateTime(r.created_at)}</Table.Td>
                      </Table.Tr>
                    );
                  })}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
            <Pager pager={pager} nextCursor={page.nextCursor} label="Request pages" />
          </>
        )}
      </QueryState>
    </>
  );
}
