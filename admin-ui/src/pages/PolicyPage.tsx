import { useParams } from "@tanstack/react-router";

import { usePolicyVersions } from "../api/policies";
import { PageHeader } from "../components/PageHeader";
import { QueryState } from "../components/States";

export function PolicyPage() {
  const { key } = useParams({ from: "/app/policies/$key" });
  const versions = usePolicyVersions(key);
  return (
    <QueryState query={versions}>{() => <PageHeader title={key} />}</QueryState>
  );
}
