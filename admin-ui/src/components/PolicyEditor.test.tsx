import { EditorView } from "@codemirror/view";
import { act, configure, screen, within } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";

import type { PolicyIn } from "../api/schema";
import { ApiError } from "../lib/problem";
import { formToPolicy, policyToForm } from "../lib/policyForm";
import { policy } from "../test/policyFixtures";
import { renderComponent, signInAs } from "../test/render";
import { PolicyEditor, type PolicyEditorProps } from "./PolicyEditor";

// The editor is a large form: skip role queries' visibility check (getComputedStyle on every
// element, the slow part in jsdom; nothing here is hidden by CSS) and allow a shared machine time.
configure({ defaultHidden: true });
vi.setConfig({ testTimeout: 60_000 });

function editor(props: Partial<PolicyEditorProps> = {}) {
  signInAs("carol"); // the directory pickers ask the (mocked) service
  const onSaveDraft = vi.fn<(body: PolicyIn) => void>();
  const onPublish = vi.fn<(body: PolicyIn) => void>();
  const utils = renderComponent(<PolicyEditor initial={policyToForm(policy())} onSaveDraft={onSaveDraft} onPublish={onPublish} {...props} />);
  const sent = () => {
    expect(onSaveDraft).toHaveBeenCalledTimes(1);
    return onSaveDraft.mock.calls[0]![0];
  };
  return { ...utils, onSaveDraft, onPublish, sent };
}

const stageCard = (n: number) => screen.getByRole("group", { name: `Stage ${n}` });

/** A CodeMirror editor's whole text (jsdom draws only the lines in view). */
const codeOf = (box: HTMLElement) => EditorView.findFromDOM(box)!.state.doc.toString();

/** Replace a CodeMirror editor's text as typing would (jsdom cannot drive its input handling). */
function setCode(box: HTMLElement, text: string) {
  const view = EditorView.findFromDOM(box)!;
  act(() => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }));
}

async function retype(user: ReturnType<typeof editor>["user"], field: HTMLElement, text: string) {
  await user.clear(field);
  await user.type(field, text);
}

describe("PolicyEditor: stage cards", () => {
  it("shows a stored policy's stages with their options", () => {
    editor();
    const second = stageCard(2);
    expect(within(second).getByRole("textbox", { name: "Stage name" })).toHaveValue("Director");
    expect(within(second).getByRole("combobox", { name: "Mode" })).toHaveValue("all");
    expect(within(second).getByRole("combobox", { name: "Veto" })).toHaveValue("yes");
    expect(within(second).getByRole("combobox", { name: "On empty" })).toHaveValue("skip");
    expect(within(second).getByRole("textbox", { name: "SLA hours" })).toHaveValue("72");
    expect(within(second).getByRole("textbox", { name: "Skip if" })).toHaveTextContent('"<"');
    // Escalation rules only where the breach escalates.
    expect(within(stageCard(1)).getByRole("group", { name: "Escalation rule 1" })).toBeInTheDocument();
    expect(within(second).queryByRole("group", { name: /Escalation rule/ })).not.toBeInTheDocument();
  });

  it("sends every stage option the author sets", async () => {
    const { user, sent } = editor();
    const second = stageCard(2);
    await user.selectOptions(within(second).getByRole("combobox", { name: "Mode" }), "quorum");
    await retype(user, within(second).getByRole("textbox", { name: "Mode value" }), "2");
    await user.selectOptions(within(second).getByRole("combobox", { name: "Veto" }), "no");
    await retype(user, within(second).getByRole("textbox", { name: "Parallel group" }), "4");
    await user.selectOptions(within(second).getByRole("combobox", { name: "On empty" }), "block");
    await retype(user, within(second).getByRole("textbox", { name: "SLA hours" }), "24");
    await retype(user, within(second).getByRole("textbox", { name: "Reminder hours" }), "8");
    setCode(within(second).getByRole("textbox", { name: "Skip if" }), '{"==": [{"var": "urgent"}, false]}');
    // Escalate on breach: the escalation rules appear, and an added one starts as a role rule.
    await user.selectOptions(within(second).getByRole("combobox", { name: "On breach" }), "escalate");
    await user.click(within(second).getByRole("button", { name: "Add escalation rule" }));
    const escalation = within(second).getByRole("group", { name: "Escalation rule 1" });
    await user.type(within(escalation).getByRole("combobox", { name: "Role" }), "cfo");
    await user.click(screen.getByRole("button", { name: "Save draft" }));
    const s = sent().stages![1]!;
    expect(s).toMatchObject({
      stage_order: 2,
      mode: "quorum",
      mode_value: 2,
      veto: false,
      parallel_group: 4,
      on_empty: "block",
      sla_hours: 24,
      reminder_hours: 8,
      skip_if: { "==": [{ var: "urgent" }, false] },
      on_breach: "escalate",
      escalation_rules: [{ rule_type: "role", rule_value: { role: "cfo" } }],
    });
  });

  it("sends the request TTL, separation-of-duties flags and routing", async () => {
    const { user, sent } = editor();
    await retype(user, screen.getByRole("textbox", { name: "Request TTL hours" }), "48");
    await user.click(screen.getByRole("switch", { name: /^Forbid self-approval/ }));
    await user.click(screen.getByRole("switch", { name: /^Forbid repeat approvers/ }));
    await retype(user, screen.getByRole("textbox", { name: "Priority" }), "9");
    setCode(screen.getByRole("textbox", { name: "Applies if" }), '{">": [{"var": "amount"}, 10]}');
    await user.click(screen.getByRole("button", { name: "Save draft" }));
    expect(sent()).toMatchObject({
      request_ttl_hours: 48,
      forbid_self_approval: false,
      forbid_repeat_approvers: true,
      allow_request_changes: true,
      priority: 9,
      applies_if: { ">": [{ var: "amount" }, 10] },
    });
  });

  it("edits a rule: type, kind, required and its value from the directory picker", async () => {
    const { user, sent } = editor();
    const rule = within(stageCard(1)).getByRole("group", { name: "Rule 1" });
    await user.selectOptions(within(rule).getByRole("combobox", { name: "Rule type" }), "user");
    await user.type(within(rule).getByRole("combobox", { name: "User" }), "alice");
    await user.selectOptions(within(rule).getByRole("combobox", { name: "Kind" }), "observer");
    await user.click(within(rule).getByRole("checkbox", { name: /Required/ }));
    await user.click(within(stageCard(1)).getByRole("button", { name: "Add rule" }));
    const added = within(stageCard(1)).getByRole("group", { name: "Rule 2" });
    await user.type(within(added).getByRole("combobox", { name: "User" }), "bob");
    await user.click(screen.getByRole("button", { name: "Save draft" }));
    expect(sent().stages![0]!.rules).toEqual([
      { rule_type: "user", rule_value: { user_id: "alice" }, kind: "observer", required: true },
      { rule_type: "user", rule_value: { user_id: "bob" }, kind: "approver", required: false },
    ]);
  });

  it("adds, moves and removes stages; stage_order follows the cards", async () => {
    const { user, sent } = editor();
    await user.click(screen.getByRole("button", { name: "Move stage 1 down" }));
    await user.click(screen.getByRole("button", { name: "Add stage" }));
    const third = stageCard(3);
    await user.type(within(within(third).getByRole("group", { name: "Rule 1" })).getByRole("combobox", { name: "User" }), "dave");
    await user.click(screen.getByRole("button", { name: "Save draft" }));
    expect(sent().stages!.map((s) => [s.stage_order, s.name])).toEqual([
      [1, "Director"],
      [2, "District officers"],
      [3, "Stage 3"],
    ]);
  });

  it("removes a stage", async () => {
    const { user, sent } = editor();
    await user.click(screen.getByRole("button", { name: "Remove stage 1" }));
    expect(screen.queryByRole("group", { name: "Stage 2" })).not.toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Save draft" }));
    expect(sent().stages!.map((s) => s.name)).toEqual(["Director"]);
  });

  it("publishes through its own callback", async () => {
    const { user, onPublish, onSaveDraft } = editor();
    await user.click(screen.getByRole("button", { name: "Publish" }));
    expect(onPublish).toHaveBeenCalledWith(formToPolicy(policyToForm(policy())));
    expect(onSaveDraft).not.toHaveBeenCalled();
  });
});

describe("PolicyEditor: problems next to their fields", () => {
  const validation = new ApiError(422, {
    title: "Validation failed",
    status: 422,
    code: "validation_failed",
    errors: [
      { pointer: "/stages/1/mode_value", detail: "quorum needs a mode_value of at least 1" },
      { pointer: "/stages/0/rules/0/rule_value/group", detail: "no such group in the directory" },
      { pointer: "/stages/1/skip_if/</0", detail: "operator log is not allowed" },
      { pointer: "/policy_key", detail: "policy_key is taken" },
      { pointer: "/stages/0/escalation_rules/0/rule_value/role", detail: "no such role" },
    ],
  });

  it("shows each of the service's errors on the field its JSON pointer names, and only there", () => {
    editor({ serverError: validation });
    expect(within(stageCard(2)).getByRole("textbox", { name: "Mode value" })).toHaveAccessibleDescription(/quorum needs a mode_value of at least 1/);
    expect(within(stageCard(1)).getByRole("textbox", { name: "Mode value" })).not.toHaveAccessibleDescription(/quorum needs/);
    const rule = within(stageCard(1)).getByRole("group", { name: "Rule 1" });
    expect(within(rule).getByRole("combobox", { name: "Group" })).toHaveAccessibleDescription(/no such group in the directory/);
    // A pointer inside a JSONLogic value lands on its editor.
    expect(within(stageCard(2)).getByRole("textbox", { name: "Skip if" })).toHaveAccessibleDescription(/operator log is not allowed/);
    expect(screen.getByRole("textbox", { name: "Policy key" })).toHaveAccessibleDescription(/policy_key is taken/);
    const escalation = within(stageCard(1)).getByRole("group", { name: "Escalation rule 1" });
    expect(within(escalation).getByRole("combobox", { name: "Role" })).toHaveAccessibleDescription(/no such role/);
    // and all of them in the alert at the top, with their pointers
    expect(within(screen.getByRole("alert")).getByText("/stages/1/mode_value")).toBeInTheDocument();
  });

  it("checks required fields before sending, with the same pointers", async () => {
    const { user, onSaveDraft } = editor();
    await user.clear(screen.getByRole("textbox", { name: "Name" }));
    await user.clear(within(stageCard(2)).getByRole("textbox", { name: "Stage name" }));
    await user.click(screen.getByRole("button", { name: "Save draft" }));
    expect(onSaveDraft).not.toHaveBeenCalled();
    expect(screen.getByRole("textbox", { name: "Name" })).toHaveAccessibleDescription(/Name is required/);
    expect(within(stageCard(2)).getByRole("textbox", { name: "Stage name" })).toHaveAccessibleDescription(/Stage name is required/);
    expect(screen.getByRole("alert")).toHaveTextContent("Fix these fields first");
    await user.type(screen.getByRole("textbox", { name: "Name" }), "Renamed");
    await user.type(within(stageCard(2)).getByRole("textbox", { name: "Stage name" }), "Board");
    await user.click(screen.getByRole("button", { name: "Save draft" }));
    expect(onSaveDraft).toHaveBeenCalledTimes(1);
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
  });

  it("refuses to send JSONLogic that does not parse", async () => {
    const { user, onSaveDraft } = editor();
    setCode(within(stageCard(1)).getByRole("textbox", { name: "Skip if" }), '{"<": [1,');
    await user.click(screen.getByRole("button", { name: "Save draft" }));
    expect(onSaveDraft).not.toHaveBeenCalled();
    expect(within(stageCard(1)).getByRole("textbox", { name: "Skip if" })).toHaveAccessibleDescription(/not valid JSON/);
  });
});

describe("PolicyEditor: JSON and YAML views", () => {
  it("shows the whole policy as the body it will send, with unsaved edits", async () => {
    const { user } = editor();
    await retype(user, screen.getByRole("textbox", { name: "Name" }), "Renamed");
    await user.click(screen.getByRole("radio", { name: "JSON" }));
    const json = screen.getByRole("textbox", { name: "Policy as JSON" });
    const expected = { ...formToPolicy(policyToForm(policy())), name: "Renamed" };
    expect(JSON.parse(codeOf(json))).toEqual(expected);
    await user.click(screen.getByRole("radio", { name: "YAML" }));
    const yaml = screen.getByRole("textbox", { name: "Policy as YAML" });
    expect(codeOf(yaml)).toMatch(/^policy_key: registry.change_request$/m);
    expect(codeOf(yaml)).toMatch(/^name: Renamed$/m);
    expect(codeOf(yaml)).toMatch(/^ {4}parallel_group: null$/m);
    // Back to the form: the edit is still there.
    await user.click(screen.getByRole("radio", { name: "Form" }));
    expect(screen.getByRole("textbox", { name: "Name" })).toHaveValue("Renamed");
  });
});

describe("PolicyEditor: read-only versions", () => {
  it("offers no edits and no save for a version in use", () => {
    editor({ readOnly: true });
    expect(screen.queryByRole("button", { name: "Save draft" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Publish" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Add stage" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Add rule" })).not.toBeInTheDocument();
    expect(within(stageCard(1)).getByRole("textbox", { name: "Stage name" })).toHaveAttribute("readonly");
    expect(within(stageCard(1)).getByRole("combobox", { name: "Mode" })).toBeDisabled();
  });

  it("keeps the key of an existing policy fixed", () => {
    editor({ lockKey: true });
    expect(screen.getByRole("textbox", { name: "Policy key" })).toHaveAttribute("readonly");
    expect(screen.getByRole("textbox", { name: "Name" })).not.toHaveAttribute("readonly");
  });
});
