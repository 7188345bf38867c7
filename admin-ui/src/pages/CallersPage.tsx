import {
  Alert,
  Autocomplete,
  Button,
  Checkbox,
  Code,
  CopyButton,
  Group,
  Modal,
  NumberInput,
  Paper,
  Stack,
  Table,
  Text,
  VisuallyHidden,
} from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useEffect, useState } from "react";

import { useClients, useCreateSecret, useRevokeSecret, useRotateSecret, useSecrets } from "../api/operations";
import type { SecretCreated, SecretOut } from "../api/schema";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { ShortId } from "../components/Filters";
import { PageHeader } from "../components/PageHeader";
import { ProblemAlert } from "../components/ProblemAlert";
import { EmptyState, QueryState } from "../components/States";
import { StatusBadge } from "../components/StatusBadge";
import { formatDateTime } from "../lib/format";
import { useUrlState } from "../lib/urlState";

/** A caller's webhook signing secrets: create (shown once), rotate with grace, revoke. */
export function CallersPage() {
  const [search, setSearch] = useUrlState();
  const caller = search.caller ?? "";
  const clients = useClients(true);
  const [draft, setDraft] = useState(caller);
  useEffect(() => setDraft(caller), [caller]);
  const [revealed, setRevealed] = useState<SecretCreated | null>(null);

  return (
    <>
      <PageHeader title="Callers" subtitle="The services that create requests, and the secrets that sign their webhooks." />
      <Paper withBorder p="sm" mb="md" component="form" role="search" aria-label="Choose a caller" onSubmit={(e) => {
        e.preventDefault();
        setSearch({ caller: draft.trim() });
      }}>
        <Group align="flex-end" gap="sm" wrap="wrap">
          <Autocomplete
            label="Caller id"
            description="The client id in its tokens' azp"
            placeholder="e.g. registry"
            data={(clients.data ?? []).map((c) => c.client_id)}
            value={draft}
            onChange={setDraft}
            onOptionSubmit={(v) => setSearch({ caller: v })}
            w={320}
          />
          <Button type="submit" variant="default">
            Show secrets
          </Button>
        </Group>
        {clients.isError && (
          <Text size="xs" c="dimmed" mt={4}>
            The directory's client list is unavailable; type the caller id.
          </Text>
        )}
      </Paper>
      {caller === "" ? (
        <EmptyState title="Choose a caller">Pick or type a caller id to see and manage its secrets.</EmptyState>
      ) : (
        <CallerSecrets caller={caller} onCreated={setRevealed} />
      )}
      <SecretReveal secret={revealed} onClose={() => setRevealed(null)} />
    </>
  );
}

function CallerSecrets({ caller, onCreated }: { caller: string; onCreated: (s: SecretCreated) => void }) {
  const secrets = useSecrets(caller);
  const create = useCreateSecret(caller);
  const [subscribe, setSubscribe] = useState(false);
  const [rotating, setRotating] = useState<SecretOut | null>(null);
  const [revoking, setRevoking] = useState<SecretOut | null>(null);
  const revoke = useRevokeSecret(caller);

  return (
    <Paper withBorder p="md" component="section" aria-labelledby="secrets-heading">
      <Group justify="space-between" mb="sm" wrap="wrap">
        <Text fw={600} size="lg" id="secrets-heading" component="h2" m={0}>
          Secrets of <Code fz="md">{caller}</Code>
        </Text>
        <Group gap="sm">
          <Checkbox label="Also send decision events" checked={subscribe} onChange={(e) => setSubscribe(e.currentTarget.checked)} />
          <Button
            loading={create.isPending}
            onClick={() => create.mutate({ subscribe_decisions: subscribe }, { onSuccess: onCreated })}
          >
            New secret
          </Button>
        </Group>
      </Group>
      <ProblemAlert error={create.error} title="No secret created" />
      <QueryState
        query={secrets}
        loadingLabel="Loading secrets"
        isEmpty={(d) => d.length === 0}
        empty={<EmptyState title="No secrets">This caller has no signing secret: its webhooks cannot be signed. Create one with New secret.</EmptyState>}
      >
        {(rows) => (
          <Table.ScrollContainer minWidth={640}>
            <Table striped aria-label="Secrets" data-stack>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Secret</Table.Th>
                  <Table.Th>Status</Table.Th>
                  <Table.Th>Created</Table.Th>
                  <Table.Th>Rotated</Table.Th>
                  <Table.Th>Signs until</Table.Th>
                  <Table.Th>
                    <VisuallyHidden>Actions</VisuallyHidden>
                  </Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {rows.map((s) => (
                  <Table.Tr key={s.id}>
                    <Table.Td data-label="Secret">
                      <ShortId id={s.id} />
                      {s.subscribe_decisions && <Text size="xs" c="dimmed">with decisions</Text>}
                    </Table.Td>
                    <Table.Td data-label="Status">
                      <StatusBadge status={s.status} />
                    </Table.Td>
                    <Table.Td data-label="Created">{formatDateTime(s.created_at)}</Table.Td>
                    <Table.Td data-label="Rotated">{formatDateTime(s.rotated_at)}</Table.Td>
                    <Table.Td data-label="Signs until">{s.status === "revoked" ? "—" : s.expires_at ? formatDateTime(s.expires_at) : "no end"}</Table.Td>
                    <Table.Td>
                      {s.status !== "revoked" && (
                        <Group gap="xs" wrap="nowrap">
                          {s.status === "active" && (
                            <Button size="xs" variant="default" onClick={() => setRotating(s)}>
                              Rotate
                            </Button>
                          )}
                          <Button size="xs" color="red" variant="light" onClick={() => setRevoking(s)}>
                            Revoke
                          </Button>
                        </Group>
                      )}
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
      </QueryState>
      {rotating && <RotateDialog caller={caller} secret={rotating} onClose={() => setRotating(null)} onRotated={onCreated} />}
      <ConfirmDialog
        opened={revoking !== null}
        title="Revoke this secret?"
        confirmLabel="Revoke secret"
        loading={revoke.isPending}
        onClose={() => {
          setRevoking(null);
          revoke.reset();
        }}
        onConfirm={() =>
          revoking &&
          revoke.mutate(revoking.id, {
            onSuccess: () => {
              setRevoking(null);
              notifications.show({ color: "green", message: "Secret revoked" });
            },
          })
        }
      >
        <Text size="sm">
          Secret {revoking?.id.slice(0, 8)} stops signing at once. Receivers that only know it will reject this caller's webhooks.
        </Text>
        <ProblemAlert error={revoke.error} />
      </ConfirmDialog>
    </Paper>
  );
}

function RotateDialog({
  caller,
  secret,
  onClose,
  onRotated,
}: {
  caller: string;
  secret: SecretOut;
  onClose: () => void;
  onRotated: (s: SecretCreated) => void;
}) {
  const rotate = useRotateSecret(caller);
  const [grace, setGrace] = useState<number | string>(24);
  const hours = typeof grace === "number" ? grace : Number.parseFloat(grace);
  const valid = Number.isFinite(hours) && hours >= 0 && hours <= 720;
  return (
    <ConfirmDialog
      opened
      title="Rotate secret"
      confirmLabel="Rotate secret"
      color="blue"
      loading={rotate.isPending}
      confirmDisabled={!valid}
      onClose={onClose}
      onConfirm={() =>
        rotate.mutate(
          { id: secret.id, graceHours: hours },
          {
            onSuccess: (created) => {
              onClose();
              onRotated(created);
            },
          },
        )
      }
    >
      <Text size="sm">
        A new secret replaces {secret.id.slice(0, 8)}. During the grace period both sign every webhook, so receivers can switch
        without missing one.
      </Text>
      <NumberInput
        label="Grace hours"
        min={0}
        max={720}
        step={1}
        value={grace}
        onChange={setGrace}
        error={valid ? undefined : "Between 0 and 720 hours"}
        data-autofocus
      />
      <ProblemAlert error={rotate.error} />
    </ConfirmDialog>
  );
}

/** The one time a secret's value is shown. */
function SecretReveal({ secret, onClose }: { secret: SecretCreated | null; onClose: () => void }) {
  return (
    <Modal opened={secret !== null} onClose={onClose} title="New secret" centered size="lg" closeOnClickOutside={false}>
      {secret && (
        <Stack gap="sm">
          <Alert color="yellow" variant="light" title="Shown only once">
            Copy it now and give it to {secret.caller}'s webhook receiver. Countersign keeps it encrypted and never shows it again.
          </Alert>
          <Code block aria-label="Secret value" style={{ wordBreak: "break-all", whiteSpace: "pre-wrap" }}>
            {secret.secret}
          </Code>
          <Group justify="space-between">
            <CopyButton value={secret.secret}>
              {({ copied, copy }) => (
                <Button onClick={copy} color={copied ? "green" : undefined}>
                  {copied ? "Copied" : "Copy"}
                </Button>
              )}
            </CopyButton>
            <Button variant="default" onClick={onClose}>
              Done
            </Button>
          </Group>
        </Stack>
      )}
    </Modal>
  );
}
