import { useNavigate } from "@tanstack/react-router";
import { useState } from "react";

import { useActivate, useCreatePolicy } from "../api/policies";
import type { PolicyIn } from "../api/schema";
import { PageHeader } from "../components/PageHeader";
import { PolicyEditor } from "../components/PolicyEditor";
import { emptyPolicy } from "../lib/policyForm";

/** A new policy key: version 1 is created as a draft (Save draft) or created and activated (Publish). */
export function NewPolicyPage() {
  const navigate = useNavigate();
  const create = useCreatePolicy();
  const activate = useActivate();
  const [initial] = useState(emptyPolicy);
  const error = create.error ?? activate.error;

  const save = (body: PolicyIn) =>
    create.mutate(body, {
      onSuccess: (p) => void navigate({ to: "/policies/$key/versions/$version", params: { key: p.policy_key, version: String(p.version) } }),
    });
  const publish = (body: PolicyIn) =>
    create.mutate(body, {
      onSuccess: (p) =>
        activate.mutate(
          { key: p.policy_key, version: p.version },
          { onSuccess: () => void navigate({ to: "/policies/$key", params: { key: p.policy_key } }) },
        ),
    });

  return (
    <>
      <PageHeader title="New policy" subtitle="Who approves requests of one artifact type, stage by stage." />
      <PolicyEditor initial={initial} serverError={error} busy={create.isPending || activate.isPending} onSaveDraft={save} onPublish={publish} />
    </>
  );
}
