import { Alert, Button } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useNavigate, useParams } from "@tanstack/react-router";

import { useActivate, useAddVersion, usePatchVersion, usePolicyVersion } from "../api/policies";
import type { PolicyIn, PolicyOut } from "../api/schema";
import { AnchorLink } from "../components/links";
import { PageHeader } from "../components/PageHeader";
import { PolicyEditor } from "../components/PolicyEditor";
import { QueryState } from "../components/States";
import { StatusBadge } from "../components/StatusBadge";
import { formatDateTime } from "../lib/format";
import { policyToForm } from "../lib/policyForm";
import { isAdmin } from "../lib/session";
import { useSession } from "../lib/useSession";

/** One version: editable while `draft` (Save draft = PATCH, Publish = activate); otherwise read-only. */
export function PolicyVersionPage() {
  const { key, version } = useParams({ from: "/app/policies/$key/versions/$version" });
  const policy = usePolicyVersion(key, Number(version));
  return (
    <QueryState query={policy} loadingLabel="Loading the policy">
      {(p) => <VersionEditor key={`${p.id}-${p.status}`} policy={p} />}
    </QueryState>
  );
}

function VersionEditor({ policy }: { policy: PolicyOut }) {
  const session = useSession();
  const navigate = useNavigate();
  const patch = usePatchVersion();
  const activate = useActivate();
  const addVersion = useAddVersion();
  const editable = policy.status === "draft" && isAdmin(session);
  const error = patch.error ?? activate.error ?? addVersion.error;

  const save = (body: PolicyIn) =>
    patch.mutate(
      { version: policy.version, body },
      { onSuccess: () => notifications.show({ color: "green", title: "Draft saved", message: `${policy.policy_key} v${policy.version}` }) },
    );
  const publish = (body: PolicyIn) =>
    patch.mutate(
      { version: policy.version, body },
      {
        onSuccess: () =>
          activate.mutate(
            { key: policy.policy_key, version: policy.version },
            {
              onSuccess: () => {
                notifications.show({ color: "green", title: "Published", message: `${policy.policy_key} v${policy.version} is active` });
                void navigate({ to: "/policies/$key", params: { key: policy.policy_key } });
              },
            },
          ),
      },
    );
  const newDraft = () =>
    addVersion.mutate(policyInFrom(policy), {
      onSuccess: (p) => void navigate({ to: "/policies/$key/versions/$version", params: { key: p.policy_key, version: String(p.version) } }),
    });

  return (
    <>
      <PageHeader
        title={`${policy.name} v${policy.version}`}
        subtitle={
          <>
            <StatusBadge status={policy.status} /> {policy.policy_key} · created {formatDateTime(policy.created_at)} by {policy.created_by} ·{" "}
            <AnchorLink to="/policies/$key" params={{ key: policy.policy_key }} underline="always">
              all versions
            </AnchorLink>
          </>
        }
      />
      {!editable && policy.status !== "draft" && (
        <Alert color="blue" variant="light" mb="md" title={`This version is ${policy.status}`}>
          Versions in use are never edited: start a new draft from this one to change it.
        </Alert>
      )}
      <PolicyEditor
        initial={policyToForm(policy)}
        readOnly={!editable}
        lockKey
        serverError={error}
        busy={patch.isPending || activate.isPending || addVersion.isPending}
        onSaveDraft={save}
        onPublish={publish}
        actions={
          !editable && isAdmin(session) ? (
            <Button variant="default" onClick={newDraft} loading={addVersion.isPending}>
              Edit as new draft
            </Button>
          ) : undefined
        }
      />
    </>
  );
}

/** The editable part of a stored version (what PUT/PATCH take). */
export function policyInFrom(p: PolicyOut): PolicyIn {
  return {
    policy_key: p.policy_key,
    name: p.name,
    description: p.description ?? null,
    artifact_type: p.artifact_type,
    forbid_self_approval: p.forbid_self_approval,
    forbid_repeat_approvers: p.forbid_repeat_approvers,
    allow_request_changes: p.allow_request_changes,
    request_ttl_hours: p.request_ttl_hours ?? null,
    applies_if: p.applies_if ?? null,
    priority: p.priority,
    stages: (p.stages ?? []).map((s) => ({
      stage_order: s.stage_order,
      name: s.name,
      mode: s.mode,
      mode_value: s.mode_value ?? null,
      veto: s.veto ?? null,
      parallel_group: s.parallel_group ?? null,
      skip_if: s.skip_if ?? null,
      on_empty: s.on_empty,
      sla_hours: s.sla_hours ?? null,
      on_breach: s.on_breach ?? null,
      escalation_rules: s.escalation_rules ?? [],
      reminder_hours: s.reminder_hours ?? null,
      rules: s.rules ?? [],
    })),
  };
}
