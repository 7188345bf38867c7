// CodeMirror 6 for JSON and JSONLogic (bundled; no CDN). With `logic`, operators outside the
// service's allowlist are underlined as you type and listed under the editor.
import { json, jsonParseLinter } from "@codemirror/lang-json";
import { linter, lintGutter, type Diagnostic } from "@codemirror/lint";
import { EditorView } from "@codemirror/view";
import { Input, Text } from "@mantine/core";
import CodeMirror from "@uiw/react-codemirror";
import { useId, useMemo } from "react";

import { checkLogic, operatorRanges } from "../lib/jsonlogic";

const logicLinter = linter((view) => {
  const text = view.state.doc.toString();
  const check = checkLogic(text);
  const out: Diagnostic[] = [];
  for (const r of operatorRanges(text, check.unsafe)) {
    out.push({ from: r.from, to: r.to, severity: "error", message: `Operator ${r.op} is not allowed` });
  }
  return out;
});

// An empty editor is an absent optional value, not a syntax error: lint only what was typed.
const parseLinter = jsonParseLinter();
const jsonLinter = linter((view) => (view.state.doc.toString().trim() === "" ? [] : parseLinter(view)));

export interface JsonEditorProps {
  /** The accessible name (UI.md: every editor has one); also the visible label unless hideLabel. */
  label: string;
  value: string;
  onChange?: (value: string) => void;
  /** Check JSONLogic operators against the allowlist. */
  logic?: boolean;
  readOnly?: boolean;
  error?: string[];
  description?: string;
  minHeight?: string;
  placeholder?: string;
}

export function JsonEditor({ label, value, onChange, logic, readOnly, error = [], description, minHeight = "60px", placeholder }: JsonEditorProps) {
  const id = useId();
  const check = useMemo(() => (logic ? checkLogic(value) : checkLogic("")), [logic, value]);
  const extensions = useMemo(
    () => [
      json(),
      EditorView.lineWrapping,
      EditorView.contentAttributes.of({ "aria-label": label, "aria-describedby": `${id}-messages` }),
      ...(readOnly ? [] : [lintGutter(), jsonLinter]),
      ...(logic && !readOnly ? [logicLinter] : []),
    ],
    [label, id, logic, readOnly],
  );
  const problems = [
    ...(logic && check.syntaxError ? [`Not valid JSON: ${check.syntaxError.message}`] : []),
    ...(check.unsafe.length ? [`Not allowed in JSONLogic: ${check.unsafe.join(", ")}`] : []),
    ...error,
  ];
  return (
    <Input.Wrapper label={label} description={description} id={id}>
      <CodeMirror
        value={value}
        onChange={onChange}
        readOnly={readOnly}
        editable={!readOnly}
        extensions={extensions}
        basicSetup={{ lineNumbers: false, foldGutter: false, highlightActiveLine: !readOnly, autocompletion: false }}
        minHeight={minHeight}
        placeholder={placeholder}
        theme="light"
      />
      <div id={`${id}-messages`} aria-live="polite">
        {problems.map((p) => (
          <Text key={p} size="xs" c="red.9" mt={4}>
            {p}
          </Text>
        ))}
      </div>
    </Input.Wrapper>
  );
}
