import { useParams } from "@tanstack/react-router";

import { PageHeader } from "../components/PageHeader";
import { EmptyState } from "../components/States";

/** One request: its h1 is `{artifact_type} {artifact_id}` (UI.md; ui-ops). */
export function RequestPage() {
  const { id } = useParams({ from: "/app/requests/$id" });
  return (
    <>
      <PageHeader title={`Request ${id}`} />
      <EmptyState title="Coming soon">This page is being built.</EmptyState>
    </>
  );
}
