import { PageHeader } from "../components/PageHeader";
import { EmptyState } from "../components/States";

/** Callers and their webhook secrets (UI.md; ui-ops). */
export function CallersPage() {
  return (
    <>
      <PageHeader title="Callers" />
      <EmptyState title="Coming soon">This page is being built.</EmptyState>
    </>
  );
}
