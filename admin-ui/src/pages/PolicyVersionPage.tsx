import { useParams } from "@tanstack/react-router";

import { usePolicyVersion } from "../api/policies";
import { PageHeader } from "../components/PageHeader";
import { QueryState } from "../components/States";

export function PolicyVersionPage() {
  const { key, version } = useParams({ from: "/app/policies/$key/versions/$version" });
  const policy = usePolicyVersion(key, Number(version));
  return (
    <QueryState query={policy}>{(p) => <PageHeader title={`${p.name} v${p.version}`} />}</QueryState>
  );
}
