// The policy author's path: author a two-stage policy with a group rule and a skip condition,
// see the service's validation error next to its field and fix it, look at the diagram,
// simulate, publish. Screenshots of each page go to docs/images/.
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { expectAccessible, launch, newPage, screenshot, signIn } from "./browser";

let browser: Browser;
beforeAll(async () => {
  browser = await launch();
});
afterAll(async () => {
  await browser?.close();
});

const h1 = (page: Page, name: string) => page.getByRole("heading", { level: 1, name, exact: true });

describe("authoring a policy", () => {
  it("creates, fixes, simulates and publishes a two-stage policy", async () => {
    const { context, page } = await newPage(browser);
    await signIn(page, "carol", ["AWE_ADMIN"], "/admin/policies");
    await h1(page, "Policies").waitFor();
    await page.getByRole("link", { name: "Sample change request approval" }).waitFor();
    await screenshot(page, "policies");

    await page.getByRole("link", { name: "New policy" }).click();
    await h1(page, "New policy").waitFor();
    await page.getByLabel("Policy key").fill("e2e.grant");
    await page.getByLabel("Name", { exact: true }).fill("Grant approval");
    await page.getByLabel("Artifact type").fill("e2e.grant");

    const stage1 = page.getByRole("group", { name: "Stage 1", exact: true });
    await stage1.getByLabel("Stage name").fill("District officers");
    await stage1.getByLabel("Rule type").selectOption("group");
    // Missing the leading slash: the service refuses it, and says so next to the field.
    await stage1.getByRole("combobox", { name: "Group", exact: true }).fill("districts/D1");
    await page.keyboard.press("Escape");

    await page.getByRole("button", { name: "Add stage" }).click();
    const stage2 = page.getByRole("group", { name: "Stage 2", exact: true });
    await stage2.getByLabel("Stage name").fill("Director");
    await stage2.getByLabel("Mode", { exact: true }).selectOption("all");
    await stage2.getByLabel("Mode value").fill("");
    await stage2.getByLabel("SLA hours").fill("48");
    await stage2.getByRole("textbox", { name: "Skip if" }).fill('{"<": [{"var": "amount"}, 1000]}');
    await stage2.getByLabel("Rule type").selectOption("role");
    await stage2.getByRole("combobox", { name: "Role", exact: true }).fill("director");
    await page.keyboard.press("Escape");

    await page.getByRole("button", { name: "Save draft" }).click();
    const groupField = stage1.getByRole("combobox", { name: "Group", exact: true });
    await expect.poll(() => groupField.getAttribute("aria-invalid")).toBe("true");
    const describedBy = (await groupField.getAttribute("aria-describedby")) ?? "";
    const errorText = await page.locator(`[id="${describedBy.split(" ").find((id) => id.includes("error"))}"]`).textContent();
    expect(errorText).toContain("group must be a path starting with '/'");
    await expectAccessible(page, "editor with an error");
    await screenshot(page, "policy-editor-error");

    await groupField.fill("/districts/D1");
    await page.keyboard.press("Escape");
    await page.getByRole("button", { name: "Save draft" }).click();
    await h1(page, "Grant approval v1").waitFor();
    await expectAccessible(page, "draft version");
    await screenshot(page, "policy-editor");

    // The JSON view of the whole policy.
    await page.locator(`label[for$="-JSON"]`).click();
    await expect.poll(() => page.getByRole("textbox", { name: "Policy as JSON" }).textContent()).toContain('"group": "/districts/D1"');
    await page.locator(`label[for$="-Form"]`).click();

    await page.getByRole("link", { name: "all versions" }).click();
    await h1(page, "Grant approval").waitFor();
    await page.getByRole("tab", { name: "Diagram" }).click();
    const figure = page.getByRole("figure", { name: "Diagram of Grant approval v1" });
    await figure.waitFor();
    await figure.getByText("1. District officers").waitFor();
    await figure.getByText("skip if").first().waitFor();
    await expectAccessible(page, "diagram");
    await screenshot(page, "policy-diagram");

    await page.getByRole("tab", { name: "Simulate" }).click();
    await page.getByRole("textbox", { name: "Context" }).fill('{"amount": 500}');
    await page.getByLabel("Requester").fill("alice");
    await page.getByRole("button", { name: "Simulate" }).click();
    const first = page.getByRole("group", { name: "Stage 1 District officers" });
    await first.getByText("Removed by separation of duties").waitFor();
    await expect.poll(() => first.textContent()).toContain("alice");
    const second = page.getByRole("group", { name: "Stage 2 Director" });
    await second.getByText("skipped", { exact: true }).waitFor();
    await expectAccessible(page, "simulate");
    await screenshot(page, "policy-simulate");

    await page.getByRole("tab", { name: "Versions" }).click();
    await page.getByRole("button", { name: "Publish v1" }).click();
    await page.getByRole("cell").getByText("active").waitFor();
    await page.getByRole("tab", { name: "Changes" }).click();
    await page.getByRole("button", { name: "Replay" }).click();
    await page.getByText(/Replayed \d+ request/).waitFor();
    await expectAccessible(page, "changes");

    await page.goto("/admin/policies");
    const row = page.getByRole("row", { name: /Grant approval/ });
    await expect.poll(() => row.textContent()).toContain("active");
    await context.close();
  });

  it("fits a narrow window", async () => {
    const { context, page } = await newPage(browser, { width: 390, height: 844 });
    await signIn(page, "carol", ["AWE_ADMIN"], "/admin/policies/new");
    await h1(page, "New policy").waitFor();
    await expectAccessible(page, "narrow editor");
    await screenshot(page, "policy-editor-narrow");
    await context.close();
  });
});
