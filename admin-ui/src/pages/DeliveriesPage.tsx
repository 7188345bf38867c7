import { PageHeader } from "../components/PageHeader";
import { EmptyState } from "../components/States";

/** Webhook deliveries with retry (UI.md; ui-ops). */
export function DeliveriesPage() {
  return (
    <>
      <PageHeader title="Deliveries" />
      <EmptyState title="Coming soon">This page is being built.</EmptyState>
    </>
  );
}
