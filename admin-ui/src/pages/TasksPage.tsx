import { PageHeader } from "../components/PageHeader";
import { EmptyState } from "../components/States";

/** The signed-in user's inbox (UI.md; ui-ops). */
export function TasksPage() {
  return (
    <>
      <PageHeader title="My tasks" />
      <EmptyState title="Coming soon">This page is being built.</EmptyState>
    </>
  );
}
