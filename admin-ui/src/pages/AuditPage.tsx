import { ActionIcon, Code, Paper, SimpleGrid, Stack, Table, Text, TextInput, VisuallyHidden } from "@mantine/core";
import { Fragment, useEffect, useState } from "react";

import { useAudit, type AuditFilters } from "../api/operations";
import type { AuditEntryOut } from "../api/schema";
import { FilterText, localToIso } from "../components/Filters";
import { PageHeader } from "../components/PageHeader";
import { Pager, useCursorPager } from "../components/Pager";
import { EmptyState, QueryState } from "../components/States";
import { formatDateTime } from "../lib/format";
import { useUrlState } from "../lib/urlState";

/** The top-level keys whose values differ between two snapshots (highlighted side by side). */
export function changedKeys(before: unknown, after: unknown): Set<string> {
  const out = new Set<string>();
  const obj = (v: unknown) => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
  const a = obj(before);
  const b = obj(after);
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.add(k);
  }
  return out;
}

function Snapshot({ label, value, changed }: { label: string; value: unknown; changed: Set<string> }) {
  const isObject = typeof value === "object" && value !== null && !Array.isArray(value);
  return (
    <Stack gap={4} role="group" aria-label={label}>
      <Text size="sm" fw={600}>
        {label}
      </Text>
      {value === null || value === undefined ? (
        <Text size="sm" c="dimmed">
          nothing
        </Text>
      ) : isObject ? (
        <Code block fz="xs" style={{ maxHeight: 360, overflow: "auto" }}>
          {Object.entries(value as Record<string, unknown>).map(([k, v]) => (
            <div key={k} style={changed.has(k) ? { background: "var(--mantine-color-yellow-1)" } : undefined}>
              {changed.has(k) && <VisuallyHidden>changed: </VisuallyHidden>}
              {`${JSON.stringify(k)}: ${JSON.stringify(v, null, 2)}`}
            </div>
          ))}
        </Code>
      ) : (
        <Code block fz="xs">
          {JSON.stringify(value, null, 2)}
        </Code>
      )}
    </Stack>
  );
}

function EntryDetail({ entry }: { entry: AuditEntryOut }) {
  const changed = changedKeys(entry.before, entry.after);
  return (
    <Stack gap="xs">
      <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="sm">
        <Snapshot label="Before" value={entry.before} changed={changed} />
        <Snapshot label="After" value={entry.after} changed={changed} />
      </SimpleGrid>
      {entry.trace_id && (
        <Text size="xs" c="dimmed">
          trace {entry.trace_id}
        </Text>
      )}
    </Stack>
  );
}

/** Every admin write with before/after snapshots; filters in the URL. */
export function AuditPage() {
  const [search, setSearch] = useUrlState();
  const pager = useCursorPager();
  const filters: AuditFilters = {
    actor: search.actor,
    action: search.action,
    resource_type: search.resource_type,
    resource_id: search.resource_id,
    since: localToIso(search.since),
    until: localToIso(search.until),
    limit: 25,
  };
  const filterKey = JSON.stringify(filters);
  useEffect(() => pager.reset(), [filterKey, pager.reset]); // eslint-disable-line react-hooks/exhaustive-deps
  const audit = useAudit({ ...filters, cursor: pager.cursor });
  const [open, setOpen] = useState<Record<string, boolean>>({});

  return (
    <>
      <PageHeader title="Audit log" subtitle="Every change an administrator made, with what it was before and after." />
      <Paper withBorder p="sm" mb="md" component="form" role="search" aria-label="Filter the audit log" onSubmit={(e) => e.preventDefault()}>
        <SimpleGrid cols={{ base: 1, xs: 2, md: 3 }} spacing="sm">
          <FilterText label="Actor" value={search.actor} onCommit={(v) => setSearch({ actor: v })} />
          <FilterText label="Action" placeholder="e.g. policy.activate" value={search.action} onCommit={(v) => setSearch({ action: v })} />
          <FilterText label="Resource type" value={search.resource_type} onCommit={(v) => setSearch({ resource_type: v })} />
          <FilterText label="Resource id" value={search.resource_id} onCommit={(v) => setSearch({ resource_id: v })} />
          <TextInput type="datetime-local" label="Since" value={search.since ?? ""} onChange={(e) => setSearch({ since: e.currentTarget.value })} />
          <TextInput type="datetime-local" label="Until" value={search.until ?? ""} onChange={(e) => setSearch({ until: e.currentTarget.value })} />
        </SimpleGrid>
      </Paper>
      <QueryState
        query={audit}
        loadingLabel="Loading the audit log"
        isEmpty={(d) => d.items.length === 0}
        empty={<EmptyState title="No audit entries match">Change or clear the filters.</EmptyState>}
      >
        {(page) => (
          <>
            <Table.ScrollContainer minWidth={720}>
              <Table highlightOnHover aria-label="Audit entries" data-stack>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th w={36}>
                      <VisuallyHidden>Details</VisuallyHidden>
                    </Table.Th>
                    <Table.Th>When</Table.Th>
                    <Table.Th>Actor</Table.Th>
                    <Table.Th>Action</Table.Th>
                    <Table.Th>Resource</Table.Th>
                    <Table.Th>Changed</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {page.items.map((e) => {
                    const expanded = !!open[e.id];
                    const changed = [...changedKeys(e.before, e.after)];
                    return (
                      <Fragment key={e.id}>
                        <Table.Tr>
                          <Table.Td data-label="Details" data-stack-last>
                            <ActionIcon
                              variant="subtle"
                              color="gray"
                              aria-expanded={expanded}
                              aria-label={`Before and after of ${e.action} ${e.resource_id}`}
                              onClick={() => setOpen((o) => ({ ...o, [e.id]: !expanded }))}
                            >
                              <span aria-hidden>{expanded ? "▾" : "▸"}</span>
                            </ActionIcon>
                          </Table.Td>
                          <Table.Td data-label="When">{formatDateTime(e.created_at)}</Table.Td>
                          <Table.Td data-label="Actor">{e.actor}</Table.Td>
                          <Table.Td data-label="Action">
                            <Text size="sm" ff="monospace">
                              {e.action}
                            </Text>
                          </Table.Td>
                          <Table.Td data-label="Resource">
                            <Text size="sm">{e.resource_type}</Text>
                            <Text size="xs" ff="monospace" c="dimmed" style={{ wordBreak: "break-all" }}>
                              {e.resource_id}
                            </Text>
                          </Table.Td>
                          <Table.Td data-label="Changed">
                            <Text size="sm">{changed.length ? changed.slice(0, 4).join(", ") + (changed.length > 4 ? "…" : "") : "—"}</Text>
                          </Table.Td>
                        </Table.Tr>
                        {expanded && (
                          <Table.Tr>
                            <Table.Td colSpan={6} bg="gray.0">
                              <EntryDetail entry={e} />
                            </Table.Td>
                          </Table.Tr>
                        )}
                      </Fragment>
                    );
                  })}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
            <Pager pager={pager} nextCursor={page.nextCursor} label="Audit pages" />
          </>
        )}
      </QueryState>
    </>
  );
}
