import { describe, expect, it } from "vitest";

import { contrast, mix, readable } from "./colour";

describe("colour", () => {
  it("computes WCAG contrast ratios", () => {
    expect(contrast("#ffffff", "#000000")).toBeCloseTo(21, 5);
    expect(contrast("#2f9e44", "#ffffff")).toBeCloseTo(3.44, 1); // Mantine green 8: too light for white text
  });

  it("darkens a colour until white text on it passes AA, and leaves passing ones alone", () => {
    const green = readable("#2f9e44", "#ffffff");
    expect(contrast(green, "#ffffff")).toBeGreaterThanOrEqual(4.5);
    expect(readable("#1971c2", "#ffffff")).toBe("#1971c2"); // blue 8 already passes
  });

  it("mixes towards another colour", () => {
    expect(mix("#ffffff", "#000000", 0.5)).toBe("#808080");
  });
});
