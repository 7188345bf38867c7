import { PageHeader } from "../components/PageHeader";
import { EmptyState } from "../components/States";

/** Delegations, including the user's own out-of-office (UI.md; ui-ops). */
export function DelegationsPage() {
  return (
    <>
      <PageHeader title="Delegations" />
      <EmptyState title="Coming soon">This page is being built.</EmptyState>
    </>
  );
}
