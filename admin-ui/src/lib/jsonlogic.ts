// The JSONLogic operators the service accepts (API.md "Policies", ADR-0006). The editor flags
// anything else as you type; the service refuses it with 422 `rule_unsafe` anyway.
export const ALLOWED_OPERATORS = new Set([
  "==", "!=", "===", "!==", "<", "<=", ">", ">=", "!", "!!", "and", "or", "if", "?:", "in", "cat",
  "substr", "+", "-", "*", "/", "%", "min", "max", "var", "missing", "missing_some", "all", "some",
  "none", "merge",
]);

export interface LogicCheck {
  /** The parsed value when the text is valid JSON (undefined for an empty text). */
  value?: unknown;
  /** JSON syntax error, with the character offset when the engine gives one. */
  syntaxError?: { message: string; offset: number };
  /** Operators outside the allowlist, in order of appearance (each once). */
  unsafe: string[];
}

function walk(node: unknown, found: string[]): void {
  if (Array.isArray(node)) {
    node.forEach((n) => walk(n, found));
    return;
  }
  if (node === null || typeof node !== "object") return;
  const entries = Object.entries(node as Record<string, unknown>);
  // A JSONLogic operation is an object with exactly one key; anything else is data.
  if (entries.length === 1) {
    const [op, args] = entries[0]!;
    if (!ALLOWED_OPERATORS.has(op) && !found.includes(op)) found.push(op);
    walk(args, found);
    return;
  }
  entries.forEach(([, v]) => walk(v, found));
}

export function checkLogic(text: string): LogicCheck {
  if (text.trim() === "") return { unsafe: [] };
  try {
    const value: unknown = JSON.parse(text);
    const unsafe: string[] = [];
    walk(value, unsafe);
    return { value, unsafe };
  } catch (e) {
    const message = e instanceof Error ? e.message : "invalid JSON";
    const match = /position (\d+)/.exec(message);
    return { syntaxError: { message, offset: match ? Number(match[1]) : 0 }, unsafe: [] };
  }
}

/** Where each unsafe operator's key appears in the text (for editor underlines). */
export function operatorRanges(text: string, ops: string[]): { from: number; to: number; op: string }[] {
  const out: { from: number; to: number; op: string }[] = [];
  for (const op of ops) {
    const needle = JSON.stringify(op);
    let at = text.indexOf(needle);
    while (at !== -1) {
      const after = text.slice(at + needle.length).trimStart();
      if (after.startsWith(":")) out.push({ from: at, to: at + needle.length, op });
      at = text.indexOf(needle, at + needle.length);
    }
  }
  return out.sort((a, b) => a.from - b.from);
}
