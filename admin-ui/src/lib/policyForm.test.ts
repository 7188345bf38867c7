import { describe, expect, it } from "vitest";

import type { PolicyIn } from "../api/schema";
import { policyInFrom } from "../pages/PolicyVersionPage";
import { policy, stage } from "../test/policyFixtures";
import { clientProblems, emptyPolicy, emptyRule, formToPolicy, policyToForm, ruleValuePointer } from "./policyForm";

/** Every rule type and stage option, so a field the form drops or mangles shows up. */
function everything() {
  return policy({
    stages: [
      ...policy().stages!,
      stage({
        stage_order: 3,
        name: "Checks",
        mode: "quorum",
        mode_value: 2,
        veto: false,
        parallel_group: 7,
        rules: [
          { rule_type: "expression", rule_value: { logic: { if: [{ ">": [{ var: "amount" }, 1000] }, "cfo", "controller"] } }, kind: "approver", required: false },
          { rule_type: "http", rule_value: { url: "https://directory.example/approvers", timeout_seconds: 5 }, kind: "approver", required: false },
          { rule_type: "http", rule_value: { url: "https://directory.example/other" }, kind: "observer", required: false },
        ],
      }),
      stage({ stage_order: 4, name: "Audit", mode: "percentage", mode_value: 60, parallel_group: 7, on_breach: "auto_approve", sla_hours: 12 }),
    ],
  });
}

describe("policy ↔ form", () => {
  it("round-trips a stored policy to the same body PUT/PATCH take", () => {
    const p = everything();
    expect(formToPolicy(policyToForm(p))).toEqual(policyInFrom(p));
  });

  it("round-trips a body (what the JSON view shows) unchanged", () => {
    const body: PolicyIn = policyInFrom(everything());
    expect(formToPolicy(policyToForm(body))).toEqual(body);
  });

  it("keeps parallel_group an integer, also when the input gave it as text", () => {
    const form = policyToForm(everything());
    expect(form.stages[2]!.parallel_group).toBe(7);
    form.stages[2]!.parallel_group = "3";
    form.stages[3]!.parallel_group = "";
    const body = formToPolicy(form);
    expect(body.stages![2]!.parallel_group).toBe(3);
    expect(body.stages![3]!.parallel_group).toBeNull();
  });

  it("holds JSONLogic as pretty text in the form and parses it back", () => {
    const form = policyToForm(policy());
    expect(form.stages[1]!.skip_if).toBe(JSON.stringify({ "<": [{ var: "amount" }, 100] }, null, 2));
    expect(form.stages[0]!.skip_if).toBe("");
    expect(form.applies_if).toContain('"=="');
    form.stages[0]!.skip_if = '{"==": [{"var": "urgent"}, true]}';
    form.applies_if = "";
    const body = formToPolicy(form);
    expect(body.stages![0]!.skip_if).toEqual({ "==": [{ var: "urgent" }, true] });
    expect(body.applies_if).toBeNull();
  });

  it("maps veto and on_breach through their select values", () => {
    const form = policyToForm(everything());
    expect(form.stages.map((s) => s.veto)).toEqual(["default", "yes", "no", "default"]);
    expect(form.stages.map((s) => s.on_breach)).toEqual(["escalate", "notify", "", "auto_approve"]);
    const body = formToPolicy(form);
    expect(body.stages!.map((s) => s.veto)).toEqual([null, true, false, null]);
    expect(body.stages!.map((s) => s.on_breach)).toEqual(["escalate", "notify", null, "auto_approve"]);
  });

  it("numbers stages by their position, so moving a card reorders the policy", () => {
    const form = policyToForm(policy());
    form.stages.reverse();
    const body = formToPolicy(form);
    expect(body.stages!.map((s) => [s.stage_order, s.name])).toEqual([
      [1, "Director"],
      [2, "District officers"],
    ]);
  });

  it("sends only the value keys of the rule's type, trimmed", () => {
    const form = emptyPolicy();
    form.stages[0]!.rules = [
      { ...emptyRule("role"), role: " director ", user_id: "left over", client: "" },
      { ...emptyRule("role"), role: "approver", client: " registry " },
      { ...emptyRule("group"), group: "/finance", role: "left over" },
    ];
    expect(formToPolicy(form).stages![0]!.rules!.map((r) => r.rule_value)).toEqual([{ role: "director" }, { role: "approver", client: "registry" }, { group: "/finance" }]);
  });

  it("sends empty numbers as null and the TTL and priority as numbers", () => {
    const form = policyToForm(policy());
    form.request_ttl_hours = "";
    form.priority = "12";
    form.stages[0]!.sla_hours = "";
    form.stages[0]!.reminder_hours = "6";
    const body = formToPolicy(form);
    expect(body.request_ttl_hours).toBeNull();
    expect(body.priority).toBe(12);
    expect(body.stages![0]!.sla_hours).toBeNull();
    expect(body.stages![0]!.reminder_hours).toBe(6);
  });
});

describe("clientProblems", () => {
  it("names required fields and unparsable JSON with the pointers the service uses", () => {
    const form = policyToForm(policy());
    form.name = " ";
    form.stages[0]!.rules[0]!.group = "";
    form.stages[1]!.skip_if = '{"<": [1,';
    form.stages[0]!.escalation_rules[0]!.role = "";
    const problems = clientProblems(form);
    expect(problems.map((p) => p.pointer)).toEqual([
      "/name",
      "/stages/0/rules/0/rule_value/group",
      "/stages/0/escalation_rules/0/rule_value/role",
      "/stages/1/skip_if",
    ]);
    expect(problems[0]!.detail).toBe("Name is required");
    expect(problems[3]!.detail).toMatch(/^not valid JSON/);
  });

  it("has nothing to say about a complete policy", () => {
    expect(clientProblems(policyToForm(everything()))).toEqual([]);
  });

  it("points at the value key of each rule type", () => {
    expect(ruleValuePointer("/stages/0/rules/1", "user")).toBe("/stages/0/rules/1/rule_value/user_id");
    expect(ruleValuePointer("/stages/0/rules/1", "expression")).toBe("/stages/0/rules/1/rule_value/logic");
    expect(ruleValuePointer("/stages/0/rules/1", "http")).toBe("/stages/0/rules/1/rule_value/url");
  });
});
