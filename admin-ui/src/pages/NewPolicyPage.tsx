import { PageHeader } from "../components/PageHeader";
import { EmptyState } from "../components/States";

export function NewPolicyPage() {
  return (
    <>
      <PageHeader title="New policy" />
      <EmptyState title="Coming soon">The policy editor is being built.</EmptyState>
    </>
  );
}
