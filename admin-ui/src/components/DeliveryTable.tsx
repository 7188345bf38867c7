// Webhook deliveries with their attempts and a per-delivery `Retry` (Deliveries page and the
// request page share it).
import { ActionIcon, Button, Group, Table, Text, VisuallyHidden } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { Fragment, useState } from "react";

import { useAttempts, useRetryDelivery } from "../api/operations";
import type { DeliveryOut } from "../api/schema";
import { formatDateTime } from "../lib/format";
import { ApiError } from "../lib/problem";
import { AnchorLink } from "./links";
import { ProblemAlert } from "./ProblemAlert";
import { LoadingState } from "./States";
import { StatusBadge } from "./StatusBadge";

function Attempts({ id, version }: { id: string; version: string | null }) {
  const attempts = useAttempts(id, version);
  if (attempts.isPending) return <LoadingState label="Loading attempts" />;
  if (attempts.isError) return <ProblemAlert error={attempts.error} />;
  if (attempts.data.length === 0) return <Text size="sm" c="dimmed">No attempt yet.</Text>;
  return (
    <Table withTableBorder aria-label="Attempts" fz="sm" data-stack>
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Attempt</Table.Th>
          <Table.Th>Started</Table.Th>
          <Table.Th>Status code</Table.Th>
          <Table.Th>Error</Table.Th>
          <Table.Th>Trigger</Table.Th>
          <Table.Th>Duration</Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {attempts.data.map((a) => (
          <Table.Tr key={`${a.attempt}-${a.started_at}`}>
            <Table.Td data-label="Attempt">{a.attempt}</Table.Td>
            <Table.Td data-label="Started">{formatDateTime(a.started_at)}</Table.Td>
            <Table.Td data-label="Status code">{a.status_code ?? "—"}</Table.Td>
            <Table.Td data-label="Error" style={{ wordBreak: "break-word" }}>{a.error ?? "—"}</Table.Td>
            <Table.Td data-label="Trigger">{a.trigger}</Table.Td>
            <Table.Td data-label="Duration">{a.duration_ms} ms</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

/** The status code, then the error text without the "HTTP 500: " it would repeat. */
function LastAnswer({ delivery: d }: { delivery: DeliveryOut }) {
  const code = d.last_status_code ? `HTTP ${d.last_status_code}` : d.last_attempt_at ? "no answer" : "—";
  const error = d.last_error && d.last_status_code ? d.last_error.replace(new RegExp(`^HTTP ${d.last_status_code}:?\\s*`), "") : d.last_error;
  return (
    <>
      <Text size="sm">{code}</Text>
      {error && (
        <Text size="xs" c="red.9" style={{ wordBreak: "break-word" }}>
          {error}
        </Text>
      )}
    </>
  );
}

export function DeliveryTable({
  deliveries,
  canRetry,
  showRequest = true,
}: {
  deliveries: DeliveryOut[];
  canRetry: boolean;
  showRequest?: boolean;
}) {
  const [open, setOpen] = useState<Record<string, boolean>>({});
  const retry = useRetryDelivery();
  const [retryError, setRetryError] = useState<{ id: string; error: unknown } | null>(null);
  const columns = showRequest ? 8 : 7;
  return (
    <Table.ScrollContainer minWidth={820}>
      <Table highlightOnHover aria-label="Deliveries" data-stack>
        <Table.Thead>
          <Table.Tr>
            <Table.Th w={36}>
              <VisuallyHidden>Attempts</VisuallyHidden>
            </Table.Th>
            <Table.Th>Event</Table.Th>
            {showRequest && <Table.Th>Request</Table.Th>}
            <Table.Th>URL</Table.Th>
            <Table.Th>Status</Table.Th>
            <Table.Th>Last answer</Table.Th>
            <Table.Th>Next attempt</Table.Th>
            <Table.Th>
              <VisuallyHidden>Actions</VisuallyHidden>
            </Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {deliveries.map((d) => {
            const expanded = !!open[d.id];
            return (
              <Fragment key={d.id}>
                <Table.Tr>
                  <Table.Td data-label="Attempts" data-stack-last>
                    <ActionIcon
                      variant="subtle"
                      color="gray"
                      aria-expanded={expanded}
                      aria-label={`Attempts of ${d.event_type} #${d.sequence}`}
                      onClick={() => setOpen((o) => ({ ...o, [d.id]: !expanded }))}
                    >
                      <span aria-hidden>{expanded ? "▾" : "▸"}</span>
                    </ActionIcon>
                  </Table.Td>
                  <Table.Td data-label="Event">
                    <Text size="sm">{d.event_type}</Text>
                    <Text size="xs" c="dimmed">
                      #{d.sequence} · {formatDateTime(d.created_at)}
                    </Text>
                  </Table.Td>
                  {showRequest && (
                    <Table.Td data-label="Request">
                      <AnchorLink to="/requests/$id" params={{ id: d.request_id }} ff="monospace" size="sm" title={d.request_id}>
                        {d.request_id.slice(0, 8)}
                      </AnchorLink>
                    </Table.Td>
                  )}
                  <Table.Td data-label="URL" maw={260}>
                    <Text size="sm" ff="monospace" style={{ wordBreak: "break-all" }}>
                      {d.url}
                    </Text>
                  </Table.Td>
                  <Table.Td data-label="Status">
                    <StatusBadge status={d.status} />
                    <Text size="xs" c="dimmed">
                      attempt {d.attempt}
                    </Text>
                  </Table.Td>
                  <Table.Td data-label="Last answer" maw={260}>
                    <LastAnswer delivery={d} />
                  </Table.Td>
                  <Table.Td data-label="Next attempt">{d.status === "pending" ? formatDateTime(d.next_attempt_at) : "—"}</Table.Td>
                  <Table.Td>
                    {canRetry && d.status !== "delivered" && (
                      <Button
                        size="xs"
                        variant="light"
                        loading={retry.isPending && retry.variables === d.id}
                        onClick={() => {
                          setRetryError(null);
                          retry.mutate(d.id, {
                            onSuccess: () =>
                              notifications.show({ color: "green", message: `${d.event_type} re-queued` }),
                            onError: (error) => setRetryError({ id: d.id, error }),
                          });
                        }}
                      >
                        Retry
                      </Button>
                    )}
                  </Table.Td>
                </Table.Tr>
                {retryError?.id === d.id && (
                  <Table.Tr>
                    <Table.Td colSpan={columns}>
                      <ProblemAlert error={retryError.error} title={retryError.error instanceof ApiError && retryError.error.status === 409 ? "Cannot retry" : undefined} />
                    </Table.Td>
                  </Table.Tr>
                )}
                {expanded && (
                  <Table.Tr>
                    <Table.Td colSpan={columns} bg="gray.0">
                      <div>
                        <Group gap="xs" mb={4}>
                          <Text size="sm" fw={600}>
                            Attempts
                          </Text>
                        </Group>
                        <Attempts id={d.id} version={d.last_attempt_at} />
                      </div>
                    </Table.Td>
                  </Table.Tr>
                )}
              </Fragment>
            );
          })}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}
