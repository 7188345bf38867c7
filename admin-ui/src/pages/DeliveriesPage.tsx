import { Button, Paper, Select, SimpleGrid, Text } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useEffect, useState } from "react";

import { countExhausted, useDeliveries, useRecover, type DeliveryFilters } from "../api/operations";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { DeliveryTable } from "../components/DeliveryTable";
import { FilterText } from "../components/Filters";
import { PageHeader } from "../components/PageHeader";
import { Pager, useCursorPager } from "../components/Pager";
import { ProblemAlert } from "../components/ProblemAlert";
import { EmptyState, QueryState } from "../components/States";
import { isAdmin } from "../lib/session";
import { useSession } from "../lib/useSession";
import { useUrlState } from "../lib/urlState";

const STATUSES = ["pending", "delivered", "exhausted"] as const;
type Status = (typeof STATUSES)[number];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Webhook deliveries: filters in the URL, attempts, retry one, `Retry all matching` exhausted. */
export function DeliveriesPage() {
  const session = useSession();
  const admin = isAdmin(session);
  const [search, setSearch] = useUrlState();
  const pager = useCursorPager();
  const status = STATUSES.includes(search.status as Status) ? (search.status as Status) : undefined;
  // A malformed id would be a 422 from the service; say so here instead of sending it.
  const requestIdValid = !search.request_id || UUID.test(search.request_id);
  const match = {
    request_id: requestIdValid ? search.request_id : undefined,
    event_type: search.event_type,
    url: search.url,
  };
  const filters: DeliveryFilters = { status, ...match, limit: 25 };
  const filterKey = JSON.stringify(filters);
  useEffect(() => pager.reset(), [filterKey, pager.reset]); // eslint-disable-line react-hooks/exhaustive-deps
  const deliveries = useDeliveries({ ...filters, cursor: pager.cursor });

  const recover = useRecover();
  const [confirm, setConfirm] = useState<{ count: number } | null>(null);
  const [counting, setCounting] = useState(false);
  const [countError, setCountError] = useState<unknown>(null);

  const askRecover = async () => {
    setCountError(null);
    setCounting(true);
    try {
      setConfirm({ count: await countExhausted(match) });
    } catch (e) {
      setCountError(e);
    } finally {
      setCounting(false);
    }
  };

  return (
    <>
      <PageHeader
        title="Deliveries"
        subtitle="Webhook notifications to callers, newest first."
        actions={
          admin &&
          status === "exhausted" && (
            <Button color="orange" onClick={() => void askRecover()} loading={counting}>
              Retry all matching
            </Button>
          )
        }
      />
      <Paper withBorder p="sm" mb="md" component="form" role="search" aria-label="Filter deliveries" onSubmit={(e) => e.preventDefault()}>
        <SimpleGrid cols={{ base: 1, xs: 2, md: 4 }} spacing="sm">
          <Select
            label="Status"
            placeholder="Any"
            clearable
            data={[...STATUSES]}
            value={status ?? null}
            onChange={(v) => setSearch({ status: v ?? undefined })}
          />
          <FilterText
            label="Request id"
            value={search.request_id}
            onCommit={(v) => setSearch({ request_id: v })}
            error={requestIdValid ? undefined : "Not a request id (UUID)"}
          />
          <FilterText label="Event type" placeholder="e.g. request_approved" value={search.event_type} onCommit={(v) => setSearch({ event_type: v })} />
          <FilterText label="URL" placeholder="Exact callback URL" value={search.url} onCommit={(v) => setSearch({ url: v })} />
        </SimpleGrid>
        {admin && status !== "exhausted" && (
          <Text size="xs" c="dimmed" mt="xs">
            Set Status to exhausted to retry every matching delivery at once.
          </Text>
        )}
      </Paper>
      <ProblemAlert error={countError} title="Could not count the matching deliveries" />
      <QueryState
        query={deliveries}
        loadingLabel="Loading deliveries"
        isEmpty={(d) => d.items.length === 0}
        empty={
          <EmptyState title={status === "exhausted" ? "No exhausted deliveries" : "No deliveries match"}>
            {status === "exhausted" ? "Every matching notification reached its caller or is still being tried." : "Change or clear the filters."}
          </EmptyState>
        }
      >
        {(page) => (
          <>
            <DeliveryTable deliveries={page.items} canRetry={admin} />
            <Pager pager={pager} nextCursor={page.nextCursor} label="Delivery pages" />
          </>
        )}
      </QueryState>
      <ConfirmDialog
        opened={confirm !== null}
        title="Retry all matching deliveries?"
        confirmLabel={confirm?.count === 1 ? "Retry 1 delivery" : `Retry ${confirm?.count ?? 0} deliveries`}
        color="orange"
        loading={recover.isPending}
        onClose={() => {
          setConfirm(null);
          recover.reset();
        }}
        onConfirm={() =>
          recover.mutate(match, {
            onSuccess: (r) => {
              setConfirm(null);
              notifications.show({ color: "green", message: `${r.requeued} ${r.requeued === 1 ? "delivery" : "deliveries"} re-queued` });
            },
          })
        }
      >
        <Text size="sm">
          {confirm?.count === 0
            ? "No exhausted delivery matches these filters."
            : `${confirm?.count} exhausted ${confirm?.count === 1 ? "delivery matches" : "deliveries match"} these filters. Each is sent again from its first attempt.`}
        </Text>
        <ProblemAlert error={recover.error} />
      </ConfirmDialog>
    </>
  );
}
