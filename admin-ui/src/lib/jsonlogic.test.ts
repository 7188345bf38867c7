import { describe, expect, it } from "vitest";

import { ALLOWED_OPERATORS, checkLogic, operatorRanges } from "./jsonlogic";

describe("checkLogic", () => {
  it("accepts an expression made only of allowed operators", () => {
    const text = '{"and": [{"<": [{"var": "amount"}, 100]}, {"in": [{"var": "district"}, ["D1", "D2"]]}, {"!": {"missing": ["owner"]}}]}';
    const check = checkLogic(text);
    expect(check.unsafe).toEqual([]);
    expect(check.syntaxError).toBeUndefined();
    expect(check.value).toEqual(JSON.parse(text));
  });

  it("flags operators outside the allowlist, nested or not, each once in order of appearance", () => {
    const check = checkLogic('{"or": [{"method": [{"var": "x"}, "toUpperCase"]}, {"log": 1}, {"and": [{"method": ["y", "z"]}]}]}');
    expect(check.unsafe).toEqual(["method", "log"]);
  });

  it("walks the arguments of an unsafe operator too", () => {
    expect(checkLogic('{"log": {"reduce": [[1], {"+": [1, 2]}, 0]}}').unsafe).toEqual(["log", "reduce"]);
  });

  it("treats objects with several keys as data, not operations", () => {
    expect(checkLogic('{"==": [{"var": "a"}, {"x": 1, "log": 2}]}').unsafe).toEqual([]);
  });

  it("gives JSON syntax errors with their offset, and no unsafe operators", () => {
    const check = checkLogic('{"<": [1, 2],}');
    expect(check.syntaxError?.message).toBeTruthy();
    expect(check.syntaxError?.offset).toBeGreaterThan(0);
    expect(check.value).toBeUndefined();
    expect(check.unsafe).toEqual([]);
  });

  it("has nothing to say about an empty text (no condition)", () => {
    expect(checkLogic("  \n")).toEqual({ unsafe: [] });
  });

  it("allows what the service's allowlist names (ADR 0006)", () => {
    for (const op of ["var", "missing_some", "merge", "substr", "?:", "%"]) expect(ALLOWED_OPERATORS.has(op)).toBe(true);
    for (const op of ["method", "log", "reduce", "map", "filter"]) expect(ALLOWED_OPERATORS.has(op)).toBe(false);
  });
});

describe("operatorRanges", () => {
  it("finds each unsafe operator where it is a key, not where it is a string value", () => {
    const text = '{"or": [{"log" : 1}, {"==": ["log", {"var": "x"}]}, {"log": 2}]}';
    const ranges = operatorRanges(text, ["log"]);
    expect(ranges).toHaveLength(2);
    for (const r of ranges) expect(text.slice(r.from, r.to)).toBe('"log"');
    expect(ranges[0]!.from).toBe(text.indexOf('"log" :'));
    expect(ranges[1]!.from).toBe(text.lastIndexOf('"log"'));
  });

  it("orders ranges of several operators by position", () => {
    const text = '{"or": [{"reduce": 1}, {"log": 2}, {"reduce": 3}]}';
    expect(operatorRanges(text, ["log", "reduce"]).map((r) => r.op)).toEqual(["reduce", "log", "reduce"]);
  });
});
