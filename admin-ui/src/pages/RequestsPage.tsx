import { PageHeader } from "../components/PageHeader";
import { EmptyState } from "../components/States";

/** Requests with filters in the query string (UI.md; ui-ops). */
export function RequestsPage() {
  return (
    <>
      <PageHeader title="Requests" />
      <EmptyState title="Coming soon">This page is being built.</EmptyState>
    </>
  );
}
