// The policy editor (UI.md "Policy editor"): the policy's fields, one card per stage with its
// rules, JSONLogic in CodeMirror, directory pickers, and every problem (the browser's and the
// service's 422 `errors[]`) next to the field its JSON pointer names.
import {
  ActionIcon,
  Button,
  Checkbox,
  Code,
  Fieldset,
  Group,
  NativeSelect,
  NumberInput,
  Paper,
  SegmentedControl,
  SimpleGrid,
  Stack,
  Switch,
  Text,
  Textarea,
  TextInput,
  Tooltip,
} from "@mantine/core";
import { zodResolver } from "@hookform/resolvers/zod";
import { createContext, useContext, useMemo, useState, type ReactNode } from "react";
import { Controller, FormProvider, useFieldArray, useForm, useFormContext, useWatch, type Path } from "react-hook-form";
import { stringify as toYaml } from "yaml";

import type { PolicyIn } from "../api/schema";
import { ApiError, type ProblemItem } from "../lib/problem";
import {
  clientProblems,
  emptyRule,
  emptyStage,
  formToPolicy,
  MODES,
  ON_BREACH,
  policySchema,
  RULE_TYPES,
  RULE_VALUE_LABEL,
  ruleValuePointer,
  type PolicyForm,
  type RuleType,
} from "../lib/policyForm";
import { DirectoryPicker } from "./DirectoryPicker";
import { JsonEditor } from "./JsonEditor";
import { ProblemAlert } from "./ProblemAlert";

interface EditorState {
  readOnly: boolean;
  lockKey: boolean;
  /** Problems whose pointer is exactly `pointer` (or at/under it with `under`). */
  errors: (pointer: string, under?: boolean) => string[];
}

const EditorContext = createContext<EditorState>({ readOnly: false, lockKey: false, errors: () => [] });

function useEditor() {
  return { ...useContext(EditorContext), form: useFormContext<PolicyForm>() };
}

const joined = (e: string[]) => (e.length ? e.join("; ") : undefined);

function TextField({ name, label, pointer, description, disabled, placeholder }: { name: Path<PolicyForm>; label: string; pointer: string; description?: string; disabled?: boolean; placeholder?: string }) {
  const { form, readOnly, errors } = useEditor();
  return (
    <Controller
      name={name}
      control={form.control}
      render={({ field }) => (
        <TextInput
          label={label}
          description={description}
          placeholder={placeholder}
          value={(field.value as string) ?? ""}
          onChange={(e) => field.onChange(e.currentTarget.value)}
          onBlur={field.onBlur}
          error={joined(errors(pointer))}
          readOnly={readOnly || disabled}
        />
      )}
    />
  );
}

function NumberField({ name, label, pointer, description, min, max }: { name: Path<PolicyForm>; label: string; pointer: string; description?: string; min?: number; max?: number }) {
  const { form, readOnly, errors } = useEditor();
  return (
    <Controller
      name={name}
      control={form.control}
      render={({ field }) => (
        <NumberInput
          label={label}
          description={description}
          value={(field.value as number | string | null) ?? ""}
          onChange={(v) => field.onChange(v === "" ? null : v)}
          onBlur={field.onBlur}
          error={joined(errors(pointer))}
          readOnly={readOnly}
          allowDecimal={false}
          min={min}
          max={max}
        />
      )}
    />
  );
}

function SelectField({ name, label, pointer, data }: { name: Path<PolicyForm>; label: string; pointer: string; data: { value: string; label: string }[] }) {
  const { form, readOnly, errors } = useEditor();
  return (
    <Controller
      name={name}
      control={form.control}
      render={({ field }) => (
        <NativeSelect
          label={label}
          data={data}
          value={(field.value as string) ?? ""}
          onChange={(e) => field.onChange(e.currentTarget.value)}
          error={joined(errors(pointer))}
          disabled={readOnly}
        />
      )}
    />
  );
}

function SwitchField({ name, label, description }: { name: Path<PolicyForm>; label: string; description?: string }) {
  const { form, readOnly } = useEditor();
  return (
    <Controller
      name={name}
      control={form.control}
      render={({ field }) => (
        <Switch label={label} description={description} checked={!!field.value} onChange={(e) => field.onChange(e.currentTarget.checked)} disabled={readOnly} />
      )}
    />
  );
}

function LogicField({ name, label, pointer, description }: { name: Path<PolicyForm>; label: string; pointer: string; description?: string }) {
  const { form, readOnly, errors } = useEditor();
  return (
    <Controller
      name={name}
      control={form.control}
      render={({ field }) => (
        <JsonEditor label={label} description={description} logic value={(field.value as string) ?? ""} onChange={field.onChange} readOnly={readOnly} error={errors(pointer, true)} placeholder='{"<": [{"var": "amount"}, 100]}' />
      )}
    />
  );
}

const options = (values: readonly string[]) => values.map((v) => ({ value: v, label: v }));

function RuleEditor({ base, pointer, index, escalation, onRemove }: { base: `stages.${number}.rules.${number}` | `stages.${number}.escalation_rules.${number}`; pointer: string; index: number; escalation?: boolean; onRemove: () => void }) {
  const { form, readOnly, errors } = useEditor();
  const type = useWatch({ control: form.control, name: `${base}.rule_type` }) as RuleType;
  const client = useWatch({ control: form.control, name: `${base}.client` }) as string;
  const valuePointer = ruleValuePointer(pointer, type);
  const picker = (kind: "users" | "roles" | "groups", field: "user_id" | "role" | "group", label: string) => (
    <Controller
      name={`${base}.${field}`}
      control={form.control}
      render={({ field: f }) => (
        <DirectoryPicker kind={kind} label={label} value={(f.value as string) ?? ""} onChange={f.onChange} error={[...errors(valuePointer), ...errors(`${pointer}/rule_value`)]} client={kind === "roles" ? client || undefined : undefined} disabled={readOnly} />
      )}
    />
  );
  const label = escalation ? `Escalation rule ${index + 1}` : `Rule ${index + 1}`;
  return (
    <Paper withBorder p="sm" radius="sm" role="group" aria-label={label} bg="gray.0">
      <Group justify="space-between" mb={4}>
        <Text size="sm" fw={600}>
          {label}
        </Text>
        {!readOnly && (
          <Button variant="subtle" color="red" size="compact-xs" onClick={onRemove} aria-label={`Remove ${label.toLowerCase()}`}>
            Remove
          </Button>
        )}
      </Group>
      <SimpleGrid cols={{ base: 1, sm: escalation ? 2 : 4 }} spacing="sm">
        <SelectField name={`${base}.rule_type`} label="Rule type" pointer={`${pointer}/rule_type`} data={options(RULE_TYPES)} />
        {!escalation && <SelectField name={`${base}.kind` as Path<PolicyForm>} label="Kind" pointer={`${pointer}/kind`} data={options(["approver", "observer"])} />}
        {!escalation && (
          <Controller
            name={`${base}.required` as Path<PolicyForm>}
            control={form.control}
            render={({ field }) => (
              <Checkbox mt={{ sm: 28 }} label="Required" description="Every user it resolves must approve" checked={!!field.value} onChange={(e) => field.onChange(e.currentTarget.checked)} disabled={readOnly} />
            )}
          />
        )}
        {type === "role" && picker("roles", "role", RULE_VALUE_LABEL.role)}
      </SimpleGrid>
      <Stack gap="sm" mt="sm">
        {type === "user" && picker("users", "user_id", RULE_VALUE_LABEL.user)}
        {type === "role" && (
          <Controller
            name={`${base}.client`}
            control={form.control}
            render={({ field }) => (
              <DirectoryPicker kind="clients" label="Client (for a client role)" value={(field.value as string) ?? ""} onChange={field.onChange} error={errors(`${pointer}/rule_value/client`)} disabled={readOnly} />
            )}
          />
        )}
        {type === "group" && picker("groups", "group", RULE_VALUE_LABEL.group)}
        {type === "expression" && (
          <LogicField name={`${base}.logic`} label={RULE_VALUE_LABEL.expression} pointer={valuePointer} description="JSONLogic over the request context giving a user id or a list of them" />
        )}
        {type === "http" && (
          <SimpleGrid cols={{ base: 1, sm: 2 }}>
            <TextField name={`${base}.url`} label={RULE_VALUE_LABEL.http} pointer={valuePointer} placeholder="https://directory.example/approvers" />
            <NumberField name={`${base}.timeout_seconds`} label="Timeout (seconds)" pointer={`${pointer}/rule_value/timeout_seconds`} min={1} />
          </SimpleGrid>
        )}
      </Stack>
    </Paper>
  );
}

function RuleList({ stage, escalation }: { stage: number; escalation?: boolean }) {
  const { form, readOnly, errors } = useEditor();
  const key = escalation ? "escalation_rules" : "rules";
  const rules = useFieldArray({ control: form.control, name: `stages.${stage}.${key}` });
  const listPointer = `/stages/${stage}/${key}`;
  return (
    <Stack gap="xs">
      {rules.fields.map((f, j) => (
        <RuleEditor
          key={f.id}
          base={`stages.${stage}.${key}.${j}`}
          pointer={`${listPointer}/${j}`}
          index={j}
          escalation={escalation}
          onRemove={() => rules.remove(j)}
        />
      ))}
      {errors(listPointer).map((e) => (
        <Text key={e} size="xs" c="red.9">
          {e}
        </Text>
      ))}
      {!readOnly && (
        <Group>
          <Button variant="light" size="xs" onClick={() => rules.append(emptyRule(escalation ? "role" : "user"))}>
            {escalation ? "Add escalation rule" : "Add rule"}
          </Button>
        </Group>
      )}
    </Stack>
  );
}

function StageCard({ index, count, onRemove, onMove }: { index: number; count: number; onRemove: () => void; onMove: (to: number) => void }) {
  const { form, readOnly, errors } = useEditor();
  const mode = useWatch({ control: form.control, name: `stages.${index}.mode` });
  const onBreach = useWatch({ control: form.control, name: `stages.${index}.on_breach` });
  const at = `/stages/${index}`;
  const n = index + 1;
  const stageLevel = errors(at).concat(errors(`${at}/stage_order`), errors(`${at}/rules`).length ? [] : []);
  return (
    <Fieldset legend={`Stage ${n}`} radius="md" aria-label={`Stage ${n}`}>
      <Stack gap="sm">
        {stageLevel.map((e) => (
          <Text key={e} size="sm" c="red.9">
            {e}
          </Text>
        ))}
        <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="sm">
          <TextField name={`stages.${index}.name`} label="Stage name" pointer={`${at}/name`} />
          <SelectField name={`stages.${index}.mode`} label="Mode" pointer={`${at}/mode`} data={options(MODES)} />
          <NumberField
            name={`stages.${index}.mode_value`}
            label="Mode value"
            pointer={`${at}/mode_value`}
            description={mode === "all" ? "Leave empty for all" : mode === "percentage" ? "Percent of approvers (1-100)" : "Approvals needed"}
            min={0}
          />
          <SelectField
            name={`stages.${index}.veto`}
            label="Veto"
            pointer={`${at}/veto`}
            data={[
              { value: "default", label: "Default for the mode" },
              { value: "yes", label: "One rejection rejects" },
              { value: "no", label: "Rejections do not veto" },
            ]}
          />
          <NumberField name={`stages.${index}.parallel_group`} label="Parallel group" pointer={`${at}/parallel_group`} description="Adjacent stages with the same number run together" min={0} />
          <SelectField name={`stages.${index}.on_empty`} label="On empty" pointer={`${at}/on_empty`} data={[{ value: "block", label: "block (reject the request)" }, { value: "skip", label: "skip the stage" }]} />
          <NumberField name={`stages.${index}.sla_hours`} label="SLA hours" pointer={`${at}/sla_hours`} min={1} />
          <SelectField name={`stages.${index}.on_breach`} label="On breach" pointer={`${at}/on_breach`} data={[{ value: "", label: "nothing" }, ...options(ON_BREACH)]} />
          <NumberField name={`stages.${index}.reminder_hours`} label="Reminder hours" pointer={`${at}/reminder_hours`} min={1} />
        </SimpleGrid>
        <LogicField name={`stages.${index}.skip_if`} label="Skip if" pointer={`${at}/skip_if`} description="JSONLogic over the request context; truthy skips the stage" />
        <Text fw={600} size="sm">
          Approvers
        </Text>
        <RuleList stage={index} />
        {onBreach === "escalate" && (
          <>
            <Text fw={600} size="sm">
              Escalation (when the SLA passes)
            </Text>
            <RuleList stage={index} escalation />
          </>
        )}
        {!readOnly && (
          <Group justify="flex-end" gap="xs">
            <Tooltip label="Move up">
              <ActionIcon variant="default" aria-label={`Move stage ${n} up`} disabled={index === 0} onClick={() => onMove(index - 1)}>
                ↑
              </ActionIcon>
            </Tooltip>
            <Tooltip label="Move down">
              <ActionIcon variant="default" aria-label={`Move stage ${n} down`} disabled={index === count - 1} onClick={() => onMove(index + 1)}>
                ↓
              </ActionIcon>
            </Tooltip>
            <Button variant="subtle" color="red" size="xs" onClick={onRemove}>
              Remove stage {n}
            </Button>
          </Group>
        )}
      </Stack>
    </Fieldset>
  );
}

function FormView() {
  const { form, readOnly, lockKey, errors } = useEditor();
  const stages = useFieldArray({ control: form.control, name: "stages" });
  return (
    <Stack gap="md">
      <Paper withBorder p="md" radius="md">
        <Stack gap="sm">
          <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="sm">
            <TextField name="policy_key" label="Policy key" pointer="/policy_key" disabled={lockKey} placeholder="registry.change_request" />
            <TextField name="name" label="Name" pointer="/name" placeholder="Change request approval" />
            <TextField name="artifact_type" label="Artifact type" pointer="/artifact_type" placeholder="registry.change_request" />
          </SimpleGrid>
          <Controller
            name="description"
            control={form.control}
            render={({ field }) => <Textarea label="Description" autosize minRows={1} value={field.value} onChange={(e) => field.onChange(e.currentTarget.value)} readOnly={readOnly} error={joined(errors("/description"))} />}
          />
          <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="sm">
            <SwitchField name="forbid_self_approval" label="Forbid self-approval" description="The requester and the creating caller cannot approve" />
            <SwitchField name="forbid_repeat_approvers" label="Forbid repeat approvers" description="Who approved an earlier stage cannot approve a later one" />
            <SwitchField name="allow_request_changes" label="Allow request changes" description="Approvers may send the request back" />
          </SimpleGrid>
          <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="sm">
            <NumberField name="request_ttl_hours" label="Request TTL hours" pointer="/request_ttl_hours" description="Expire the whole request after this long" min={1} />
            <NumberField name="priority" label="Priority" pointer="/priority" description="Routing: highest first among matching policies" />
          </SimpleGrid>
          <LogicField name="applies_if" label="Applies if" pointer="/applies_if" description="Routing: JSONLogic deciding whether this policy takes a request without a policy_key" />
        </Stack>
      </Paper>
      {stages.fields.map((f, i) => (
        <StageCard key={f.id} index={i} count={stages.fields.length} onRemove={() => stages.remove(i)} onMove={(to) => stages.move(i, to)} />
      ))}
      {errors("/stages").map((e) => (
        <Text key={e} size="sm" c="red.9">
          {e}
        </Text>
      ))}
      {!readOnly && (
        <Group>
          <Button variant="light" onClick={() => stages.append(emptyStage(stages.fields.length + 1))}>
            Add stage
          </Button>
        </Group>
      )}
    </Stack>
  );
}

function CodeView({ format }: { format: "JSON" | "YAML" }) {
  const { form } = useEditor();
  const values = useWatch({ control: form.control }) as PolicyForm;
  const text = useMemo(() => {
    const body = formToPolicy(values);
    return format === "JSON" ? JSON.stringify(body, null, 2) : toYaml(body);
  }, [values, format]);
  return (
    <Stack gap="xs">
      <Text size="sm" c="dimmed">
        The whole policy as it will be sent ({format === "YAML" ? <>the format of <Code>countersign policy apply -f</Code></> : "the API body"}).
      </Text>
      <JsonEditor label={`Policy as ${format}`} value={text} readOnly minHeight="320px" />
    </Stack>
  );
}

export interface PolicyEditorProps {
  initial: PolicyForm;
  readOnly?: boolean;
  /** The key cannot change once the policy exists. */
  lockKey?: boolean;
  /** The last answer of the service (a 422's errors[] go next to their fields). */
  serverError?: unknown;
  busy?: boolean;
  onSaveDraft?: (body: PolicyIn) => void;
  onPublish?: (body: PolicyIn) => void;
  /** Extra buttons (read-only versions: "Edit as new draft"). */
  actions?: ReactNode;
}

export function PolicyEditor({ initial, readOnly = false, lockKey = false, serverError, busy, onSaveDraft, onPublish, actions }: PolicyEditorProps) {
  const form = useForm<PolicyForm>({ defaultValues: initial, resolver: zodResolver(policySchema), mode: "onSubmit" });
  const [view, setView] = useState<"Form" | "JSON" | "YAML">("Form");
  const [local, setLocal] = useState<ProblemItem[]>([]);

  const serverItems = serverError instanceof ApiError ? serverError.fieldErrors : [];
  const all = [...local, ...serverItems];
  const errors = (pointer: string, under = false) =>
    all.filter((e) => e.pointer === pointer || (under && (e.pointer ?? "").startsWith(pointer + "/"))).map((e) => e.detail ?? e.message ?? "invalid");

  const submit = (handler?: (body: PolicyIn) => void) =>
    form.handleSubmit((values) => {
      const problems = clientProblems(values);
      setLocal(problems);
      if (problems.length === 0) handler?.(formToPolicy(values));
    });

  const state = useMemo<EditorState>(() => ({ readOnly, lockKey, errors }), [readOnly, lockKey, all.length, serverError, local]); // eslint-disable-line react-hooks/exhaustive-deps

  return (
    <FormProvider {...form}>
      <EditorContext.Provider value={state}>
        <form onSubmit={(e) => e.preventDefault()} noValidate aria-label="Policy">
          <Stack gap="md">
            <Group justify="space-between" wrap="wrap" gap="sm">
              <SegmentedControl aria-label="View" value={view} onChange={(v) => setView(v as typeof view)} data={["Form", "JSON", "YAML"]} />
              <Group gap="xs">
                {actions}
                {!readOnly && onSaveDraft && (
                  <Button variant="default" loading={busy} onClick={submit(onSaveDraft)}>
                    Save draft
                  </Button>
                )}
                {!readOnly && onPublish && (
                  <Button loading={busy} onClick={submit(onPublish)}>
                    Publish
                  </Button>
                )}
              </Group>
            </Group>
            {local.length > 0 && <ProblemAlert error={new ApiError(422, { title: "Fix these fields first", errors: local })} />}
            {serverError !== undefined && serverError !== null && <ProblemAlert error={serverError} />}
            {view === "Form" ? <FormView /> : <CodeView format={view} />}
          </Stack>
        </form>
      </EditorContext.Provider>
    </FormProvider>
  );
}
