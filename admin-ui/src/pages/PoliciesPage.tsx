import { Table, Text } from "@mantine/core";

import { usePolicies } from "../api/policies";
import { AnchorLink, ButtonLink } from "../components/links";
import { PageHeader } from "../components/PageHeader";
import { EmptyState, QueryState } from "../components/States";
import { StatusBadge } from "../components/StatusBadge";
import { formatDateTime } from "../lib/format";
import { isAdmin } from "../lib/session";
import { useSession } from "../lib/useSession";

/** Every policy key with its newest version and that version's status. */
export function PoliciesPage() {
  const session = useSession();
  const policies = usePolicies();
  return (
    <>
      <PageHeader
        title="Policies"
        subtitle="Who approves what: one policy per kind of artifact, versioned."
        actions={
          isAdmin(session) && (
            <ButtonLink to="/policies/new">
              New policy
            </ButtonLink>
          )
        }
      />
      <QueryState
        query={policies}
        loadingLabel="Loading policies"
        isEmpty={(d) => d.length === 0}
        empty={<EmptyState title="No policies yet">Create one with New policy, or with `countersign policy apply -f`.</EmptyState>}
      >
        {(rows) => (
          <Table.ScrollContainer minWidth={640}>
            <Table striped highlightOnHover>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Policy key</Table.Th>
                  <Table.Th>Artifact type</Table.Th>
                  <Table.Th>Version</Table.Th>
                  <Table.Th>Status</Table.Th>
                  <Table.Th>Stages</Table.Th>
                  <Table.Th>Created</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {rows.map((p) => (
                  <Table.Tr key={p.policy_key}>
                    <Table.Td>
                      <AnchorLink to="/policies/$key" params={{ key: p.policy_key }}>
                        {p.name}
                      </AnchorLink>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm" ff="monospace">
                        {p.policy_key}
                      </Text>
                    </Table.Td>
                    <Table.Td>{p.artifact_type}</Table.Td>
                    <Table.Td>v{p.version}</Table.Td>
                    <Table.Td>
                      <StatusBadge status={p.status} />
                    </Table.Td>
                    <Table.Td>{p.stages?.length ?? 0}</Table.Td>
                    <Table.Td>{formatDateTime(p.created_at)}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
      </QueryState>
    </>
  );
}
