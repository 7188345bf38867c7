import { PageHeader } from "../components/PageHeader";
import { EmptyState } from "../components/States";

/** The audit trail of admin writes (UI.md; ui-ops). */
export function AuditPage() {
  return (
    <>
      <PageHeader title="Audit log" />
      <EmptyState title="Coming soon">This page is being built.</EmptyState>
    </>
  );
}
