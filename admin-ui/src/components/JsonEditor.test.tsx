import { forceLinting, diagnosticCount } from "@codemirror/lint";
import { EditorView } from "@codemirror/view";
import { act, screen, waitFor } from "@testing-library/react";
import { useState } from "react";
import { describe, expect, it } from "vitest";

import { renderComponent } from "../test/render";
import { JsonEditor } from "./JsonEditor";

function Editor({ initial = "", logic = true }: { initial?: string; logic?: boolean }) {
  const [value, setValue] = useState(initial);
  return <JsonEditor label="Skip if" value={value} onChange={setValue} logic={logic} />;
}

/** Type into CodeMirror as its input handling would: a transaction replacing the document. */
function typeInto(name: string, text: string): EditorView {
  const content = screen.getByRole("textbox", { name });
  const view = EditorView.findFromDOM(content)!;
  act(() => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }));
  return view;
}

describe("JsonEditor", () => {
  it("is a textbox named by its label", () => {
    renderComponent(<Editor />);
    expect(screen.getByRole("textbox", { name: "Skip if" })).toBeInTheDocument();
  });

  it("flags an operator outside the allowlist as you type, and clears it when fixed", async () => {
    renderComponent(<Editor />);
    typeInto("Skip if", '{"<": [{"var": "amount"}, 100]}');
    expect(screen.queryByText(/Not allowed in JSONLogic/)).not.toBeInTheDocument();
    typeInto("Skip if", '{"or": [{"log": 1}, {"method": ["x", "y"]}]}');
    expect(await screen.findByText("Not allowed in JSONLogic: log, method")).toBeInTheDocument();
    typeInto("Skip if", '{"or": [{"!": 1}]}');
    await waitFor(() => expect(screen.queryByText(/Not allowed in JSONLogic/)).not.toBeInTheDocument());
  });

  it("underlines the unsafe operator in the editor", async () => {
    renderComponent(<Editor />);
    const view = typeInto("Skip if", '{"log": {"var": "x"}}');
    act(() => forceLinting(view));
    // one from the allowlist linter (the JSON itself parses)
    await waitFor(() => expect(diagnosticCount(view.state)).toBe(1));
  });

  it("says when the JSON does not parse", async () => {
    renderComponent(<Editor />);
    typeInto("Skip if", '{"<": [1, 2');
    expect(await screen.findByText(/^Not valid JSON: /)).toBeInTheDocument();
  });

  it("checks nothing without logic (a context is data, not JSONLogic)", async () => {
    renderComponent(<Editor logic={false} initial='{"log": 1}' />);
    expect(screen.queryByText(/Not allowed in JSONLogic/)).not.toBeInTheDocument();
  });

  it("shows the service's errors under the editor, described by them", () => {
    renderComponent(<JsonEditor label="Expression" value="{}" error={["unknown operator: log"]} />);
    const box = screen.getByRole("textbox", { name: "Expression" });
    expect(screen.getByText("unknown operator: log")).toBeInTheDocument();
    expect(box).toHaveAccessibleDescription("unknown operator: log");
  });
});
