// The policy editor's form model: PolicyIn with JSONLogic held as text and numbers as inputs
// give them, converted both ways. Client-side problems use the same JSON pointers as the
// service's 422 errors, so one lookup shows either next to its field.
import { z } from "zod";

import type { PolicyIn, PolicyOut, RuleIn, StageIn } from "../api/schema";
import { checkLogic } from "./jsonlogic";
import type { ProblemItem } from "./problem";

export const RULE_TYPES = ["user", "role", "group", "expression", "http"] as const;
export const MODES = ["all", "any-n", "quorum", "percentage"] as const;
export const ON_BREACH = ["notify", "escalate", "auto_approve", "auto_reject"] as const;
export type RuleType = (typeof RULE_TYPES)[number];

/** The label of a rule's value field per type (UI.md names them). */
export const RULE_VALUE_LABEL: Record<RuleType, string> = {
  user: "User",
  role: "Role",
  group: "Group",
  expression: "Expression",
  http: "URL",
};

const num = z.union([z.number(), z.string()]).nullable();

export const ruleSchema = z.object({
  rule_type: z.enum(RULE_TYPES),
  kind: z.enum(["approver", "observer"]),
  required: z.boolean(),
  user_id: z.string(),
  role: z.string(),
  client: z.string(),
  group: z.string(),
  logic: z.string(),
  url: z.string(),
  timeout_seconds: num,
});
export type RuleForm = z.infer<typeof ruleSchema>;

export const stageSchema = z.object({
  name: z.string(),
  mode: z.enum(MODES),
  mode_value: num,
  veto: z.enum(["default", "yes", "no"]),
  parallel_group: num,
  skip_if: z.string(),
  on_empty: z.enum(["block", "skip"]),
  sla_hours: num,
  on_breach: z.union([z.enum(ON_BREACH), z.literal("")]),
  escalation_rules: z.array(ruleSchema),
  reminder_hours: num,
  rules: z.array(ruleSchema),
});
export type StageForm = z.infer<typeof stageSchema>;

export const policySchema = z.object({
  policy_key: z.string(),
  name: z.string(),
  description: z.string(),
  artifact_type: z.string(),
  forbid_self_approval: z.boolean(),
  forbid_repeat_approvers: z.boolean(),
  allow_request_changes: z.boolean(),
  request_ttl_hours: num,
  applies_if: z.string(),
  priority: num,
  stages: z.array(stageSchema),
});
export type PolicyForm = z.infer<typeof policySchema>;

export function emptyRule(rule_type: RuleType = "user"): RuleForm {
  return { rule_type, kind: "approver", required: false, user_id: "", role: "", client: "", group: "", logic: "", url: "", timeout_seconds: null };
}

export function emptyStage(n: number): StageForm {
  return {
    name: `Stage ${n}`,
    mode: "any-n",
    mode_value: 1,
    veto: "default",
    parallel_group: null,
    skip_if: "",
    on_empty: "block",
    sla_hours: null,
    on_breach: "",
    escalation_rules: [],
    reminder_hours: null,
    rules: [emptyRule()],
  };
}

export function emptyPolicy(): PolicyForm {
  return {
    policy_key: "",
    name: "",
    description: "",
    artifact_type: "",
    forbid_self_approval: true,
    forbid_repeat_approvers: false,
    allow_request_changes: true,
    request_ttl_hours: null,
    applies_if: "",
    priority: 0,
    stages: [emptyStage(1)],
  };
}

const pretty = (v: unknown) => (v === null || v === undefined ? "" : JSON.stringify(v, null, 2));
const str = (v: unknown) => (typeof v === "string" ? v : v === undefined || v === null ? "" : String(v));

function ruleToForm(rule: { rule_type: RuleType; rule_value: Record<string, unknown>; kind?: "approver" | "observer"; required?: boolean }): RuleForm {
  const v = rule.rule_value ?? {};
  return {
    ...emptyRule(rule.rule_type),
    kind: rule.kind ?? "approver",
    required: rule.required ?? false,
    user_id: str(v.user_id),
    role: str(v.role),
    client: str(v.client),
    group: str(v.group),
    logic: pretty(v.logic),
    url: str(v.url),
    timeout_seconds: typeof v.timeout_seconds === "number" ? v.timeout_seconds : null,
  };
}

export function policyToForm(p: PolicyIn | PolicyOut): PolicyForm {
  const stages = [...(p.stages ?? [])].sort((a, b) => a.stage_order - b.stage_order);
  return {
    policy_key: p.policy_key,
    name: p.name,
    description: p.description ?? "",
    artifact_type: p.artifact_type,
    forbid_self_approval: p.forbid_self_approval,
    forbid_repeat_approvers: p.forbid_repeat_approvers,
    allow_request_changes: p.allow_request_changes,
    request_ttl_hours: p.request_ttl_hours ?? null,
    applies_if: pretty(p.applies_if),
    priority: p.priority ?? 0,
    stages: stages.map((s) => ({
      name: s.name,
      mode: s.mode,
      mode_value: s.mode_value ?? null,
      veto: s.veto === true ? "yes" : s.veto === false ? "no" : "default",
      parallel_group: s.parallel_group ?? null,
      skip_if: pretty(s.skip_if),
      on_empty: s.on_empty,
      sla_hours: s.sla_hours ?? null,
      on_breach: s.on_breach ?? "",
      escalation_rules: (s.escalation_rules ?? []).map((r) => ruleToForm(r)),
      reminder_hours: s.reminder_hours ?? null,
      rules: (s.rules ?? []).map((r) => ruleToForm(r)),
    })),
  };
}

/** A number from an input, or null when empty; NaN stays for the server to refuse. */
function toNumber(v: number | string | null): number | null {
  if (v === null || v === "") return null;
  return typeof v === "number" ? v : Number(v);
}

function toLogic(text: string): unknown {
  const check = checkLogic(text);
  return check.value === undefined ? null : check.value;
}

function ruleValue(r: RuleForm): Record<string, unknown> {
  switch (r.rule_type) {
    case "user":
      return { user_id: r.user_id.trim() };
    case "role":
      return r.client.trim() ? { role: r.role.trim(), client: r.client.trim() } : { role: r.role.trim() };
    case "group":
      return { group: r.group.trim() };
    case "expression":
      return { logic: toLogic(r.logic) };
    case "http": {
      const t = toNumber(r.timeout_seconds);
      return t === null ? { url: r.url.trim() } : { url: r.url.trim(), timeout_seconds: t };
    }
  }
}

export function formToPolicy(f: PolicyForm): PolicyIn {
  const stages: StageIn[] = f.stages.map((s, i) => ({
    stage_order: i + 1,
    name: s.name.trim(),
    mode: s.mode,
    mode_value: toNumber(s.mode_value),
    veto: s.veto === "yes" ? true : s.veto === "no" ? false : null,
    parallel_group: toNumber(s.parallel_group),
    skip_if: toLogic(s.skip_if),
    on_empty: s.on_empty,
    sla_hours: toNumber(s.sla_hours),
    on_breach: s.on_breach === "" ? null : s.on_breach,
    escalation_rules: s.escalation_rules.map((r) => ({ rule_type: r.rule_type, rule_value: ruleValue(r) })),
    reminder_hours: toNumber(s.reminder_hours),
    rules: s.rules.map((r): RuleIn => ({ rule_type: r.rule_type, rule_value: ruleValue(r), kind: r.kind, required: r.required })),
  }));
  return {
    policy_key: f.policy_key.trim(),
    name: f.name.trim(),
    description: f.description.trim() || null,
    artifact_type: f.artifact_type.trim(),
    forbid_self_approval: f.forbid_self_approval,
    forbid_repeat_approvers: f.forbid_repeat_approvers,
    allow_request_changes: f.allow_request_changes,
    request_ttl_hours: toNumber(f.request_ttl_hours),
    applies_if: toLogic(f.applies_if),
    priority: toNumber(f.priority) ?? 0,
    stages,
  };
}

/** The JSON pointer of a rule's value field in the body sent (`…/rule_value/group`). */
export function ruleValuePointer(base: string, type: RuleType): string {
  const key = { user: "user_id", role: "role", group: "group", expression: "logic", http: "url" }[type];
  return `${base}/rule_value/${key}`;
}

/**
 * What the browser can tell before sending: required text and JSON that does not parse. The
 * service checks everything else (and these again); its answers use the same pointers.
 */
export function clientProblems(f: PolicyForm): ProblemItem[] {
  const out: ProblemItem[] = [];
  const need = (value: string, pointer: string, what: string) => {
    if (!value.trim()) out.push({ pointer, detail: `${what} is required` });
  };
  const logic = (text: string, pointer: string) => {
    const c = checkLogic(text);
    if (c.syntaxError) out.push({ pointer, detail: `not valid JSON: ${c.syntaxError.message}` });
  };
  need(f.policy_key, "/policy_key", "Policy key");
  need(f.name, "/name", "Name");
  need(f.artifact_type, "/artifact_type", "Artifact type");
  logic(f.applies_if, "/applies_if");
  const rules = (rs: RuleForm[], base: string) =>
    rs.forEach((r, j) => {
      const at = `${base}/${j}`;
      if (r.rule_type === "expression") {
        need(r.logic, ruleValuePointer(at, "expression"), "Expression");
        logic(r.logic, ruleValuePointer(at, "expression"));
      } else {
        need(ruleValue(r)[{ user: "user_id", role: "role", group: "group", http: "url" }[r.rule_type]] as string, ruleValuePointer(at, r.rule_type), RULE_VALUE_LABEL[r.rule_type]);
      }
    });
  f.stages.forEach((s, i) => {
    need(s.name, `/stages/${i}/name`, "Stage name");
    logic(s.skip_if, `/stages/${i}/skip_if`);
    rules(s.rules, `/stages/${i}/rules`);
    rules(s.escalation_rules, `/stages/${i}/escalation_rules`);
  });
  return out;
}
