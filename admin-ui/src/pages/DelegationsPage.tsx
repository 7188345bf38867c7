import { Autocomplete, Badge, Button, Group, Paper, SimpleGrid, Stack, Switch, Table, Text, Textarea, TextInput, Title, VisuallyHidden } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useEffect, useState } from "react";

import { useCreateDelegation, useDeleteDelegation, useDelegations, useDirectoryUsers } from "../api/operations";
import type { DelegationOut } from "../api/schema";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { FilterText, isoToLocal, localToIso } from "../components/Filters";
import { PageHeader } from "../components/PageHeader";
import { Pager, useCursorPager } from "../components/Pager";
import { ProblemAlert } from "../components/ProblemAlert";
import { EmptyState, QueryState } from "../components/States";
import { formatDateTime } from "../lib/format";
import { errorsAt } from "../lib/problem";
import { canOperate, isAdmin } from "../lib/session";
import { useSession } from "../lib/useSession";
import { useUrlState } from "../lib/urlState";

function windowState(d: DelegationOut, now: number): { label: string; color: string } {
  if (new Date(d.ends_at).getTime() <= now) return { label: "ended", color: "gray" };
  if (new Date(d.starts_at).getTime() > now) return { label: "scheduled", color: "blue" };
  return { label: "active", color: "green" };
}

/** Out-of-office windows: yours (admins and viewers: everyone's), create and delete. */
export function DelegationsPage() {
  const session = useSession();
  const admin = isAdmin(session);
  const [search, setSearch] = useUrlState();
  const pager = useCursorPager();
  const filters = { user_id: search.user_id, active: search.active === "true" ? true : undefined, limit: 25 };
  const filterKey = JSON.stringify(filters);
  useEffect(() => pager.reset(), [filterKey, pager.reset]); // eslint-disable-line react-hooks/exhaustive-deps
  const delegations = useDelegations({ ...filters, cursor: pager.cursor });
  const [deleting, setDeleting] = useState<DelegationOut | null>(null);
  const remove = useDeleteDelegation();
  const now = Date.now();

  return (
    <>
      <PageHeader
        title="Delegations"
        subtitle={canOperate(session) ? "Everyone's out-of-office windows: who decides for whom, and when." : "Your out-of-office windows: who decides your tasks while you are away."}
      />
      <Stack gap="md">
        <NewDelegation admin={admin} me={session?.user ?? ""} directory={canOperate(session)} />
        <Paper withBorder p="md" component="section" aria-labelledby="delegations-list">
          <Group justify="space-between" mb="sm" wrap="wrap" align="flex-end">
            <Title order={2} size="h4" id="delegations-list">
              Windows
            </Title>
            <Group gap="sm" align="flex-end">
              {canOperate(session) && (
                <FilterText label="User" placeholder="Anyone" value={search.user_id} onCommit={(v) => setSearch({ user_id: v })} />
              )}
              <Switch
                label="Active now only"
                checked={search.active === "true"}
                onChange={(e) => setSearch({ active: e.currentTarget.checked ? "true" : undefined })}
                mb={8}
              />
            </Group>
          </Group>
          <QueryState
            query={delegations}
            loadingLabel="Loading delegations"
            isEmpty={(d) => d.items.length === 0}
            empty={<EmptyState title="No delegations">Nobody's tasks are delegated{search.active === "true" ? " right now" : ""}.</EmptyState>}
          >
            {(page) => (
              <>
                <Table.ScrollContainer minWidth={720}>
                  <Table striped aria-label="Delegations" data-stack>
                    <Table.Thead>
                      <Table.Tr>
                        <Table.Th>User</Table.Th>
                        <Table.Th>Delegate</Table.Th>
                        <Table.Th>From</Table.Th>
                        <Table.Th>Until</Table.Th>
                        <Table.Th>State</Table.Th>
                        <Table.Th>Reason</Table.Th>
                        <Table.Th>
                          <VisuallyHidden>Actions</VisuallyHidden>
                        </Table.Th>
                      </Table.Tr>
                    </Table.Thead>
                    <Table.Tbody>
                      {page.items.map((d) => {
                        const state = windowState(d, now);
                        const mine = d.user_id === session?.user;
                        return (
                          <Table.Tr key={d.id}>
                            <Table.Td data-label="User">{d.user_id}</Table.Td>
                            <Table.Td data-label="Delegate">{d.delegate_to}</Table.Td>
                            <Table.Td data-label="From">{formatDateTime(d.starts_at)}</Table.Td>
                            <Table.Td data-label="Until">{formatDateTime(d.ends_at)}</Table.Td>
                            <Table.Td data-label="State">
                              <Badge color={state.color} variant="dot" c="dark.7">
                                {state.label}
                              </Badge>
                            </Table.Td>
                            <Table.Td data-label="Reason">{d.reason ?? "—"}</Table.Td>
                            <Table.Td>
                              {(admin || mine) && (
                                <Button size="xs" color="red" variant="light" onClick={() => setDeleting(d)}>
                                  Delete
                                </Button>
                              )}
                            </Table.Td>
                          </Table.Tr>
                        );
                      })}
                    </Table.Tbody>
                  </Table>
                </Table.ScrollContainer>
                <Pager pager={pager} nextCursor={page.nextCursor} label="Delegation pages" />
              </>
            )}
          </QueryState>
        </Paper>
      </Stack>
      <ConfirmDialog
        opened={deleting !== null}
        title="Delete this delegation?"
        confirmLabel="Delete delegation"
        loading={remove.isPending}
        onClose={() => {
          setDeleting(null);
          remove.reset();
        }}
        onConfirm={() =>
          deleting &&
          remove.mutate(deleting.id, {
            onSuccess: () => {
              setDeleting(null);
              notifications.show({ color: "green", message: "Delegation deleted" });
            },
          })
        }
      >
        <Text size="sm">
          {deleting?.delegate_to} will no longer decide for {deleting?.user_id}. Tasks already sent to {deleting?.delegate_to} stay theirs.
        </Text>
        <ProblemAlert error={remove.error} />
      </ConfirmDialog>
    </>
  );
}

function NewDelegation({ admin, me, directory }: { admin: boolean; me: string; directory: boolean }) {
  const create = useCreateDelegation();
  const users = useDirectoryUsers(directory);
  const names = (users.data ?? []).map((u) => u.user_id);
  const start = new Date();
  start.setSeconds(0, 0);
  const [userId, setUserId] = useState("");
  const [delegate, setDelegate] = useState("");
  const [startsAt, setStartsAt] = useState(isoToLocal(start));
  const [endsAt, setEndsAt] = useState(isoToLocal(new Date(start.getTime() + 7 * 24 * 3600 * 1000)));
  const [reason, setReason] = useState("");
  const whose = admin && userId.trim() !== "" && userId.trim() !== me ? userId.trim() : null;
  const order = startsAt && endsAt && new Date(endsAt) <= new Date(startsAt) ? "Must be after the start" : undefined;
  const fieldError = (name: string) => errorsAt(create.error, `/${name}`)[0];

  return (
    <Paper withBorder p="md" component="section" aria-labelledby="delegation-new">
      <Title order={2} size="h4" id="delegation-new" mb="xs">
        {admin ? "New delegation" : "Out of office"}
      </Title>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate(
            {
              user_id: whose,
              delegate_to: delegate.trim(),
              starts_at: localToIso(startsAt) ?? "",
              ends_at: localToIso(endsAt) ?? "",
              reason: reason.trim() || null,
            },
            {
              onSuccess: (d) => {
                notifications.show({ color: "green", message: `${d.delegate_to} decides for ${d.user_id} until ${formatDateTime(d.ends_at)}` });
                setDelegate("");
                setReason("");
                setUserId("");
              },
            },
          );
        }}
      >
        <SimpleGrid cols={{ base: 1, sm: 2, lg: admin ? 3 : 4 }} spacing="sm">
          {admin && (
            <Autocomplete
              label="For user"
              description="Empty: yourself"
              placeholder={me}
              value={userId}
              onChange={setUserId}
              data={names}
              error={fieldError("user_id")}
            />
          )}
          <Autocomplete
            label="Delegate to"
            required
            value={delegate}
            onChange={setDelegate}
            data={names}
            error={fieldError("delegate_to")}
          />
          <TextInput type="datetime-local" label="Starts" required value={startsAt} onChange={(e) => setStartsAt(e.currentTarget.value)} error={fieldError("starts_at")} />
          <TextInput
            type="datetime-local"
            label="Ends"
            required
            value={endsAt}
            onChange={(e) => setEndsAt(e.currentTarget.value)}
            error={order ?? fieldError("ends_at")}
          />
          <Textarea label="Reason" autosize minRows={1} value={reason} onChange={(e) => setReason(e.currentTarget.value)} />
        </SimpleGrid>
        <Group mt="sm" gap="sm">
          <Button type="submit" loading={create.isPending} disabled={delegate.trim() === "" || !!order}>
            {whose ? "Create delegation" : "Delegate my tasks"}
          </Button>
        </Group>
        {create.error !== null && (
          <Stack mt="sm">
            <ProblemAlert error={create.error} title="Not delegated" />
          </Stack>
        )}
      </form>
    </Paper>
  );
}
