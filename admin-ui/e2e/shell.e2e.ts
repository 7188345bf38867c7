// Every route loads, has its h1, passes axe, and the navigation follows the user's roles.
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { expectAccessible, launch, newPage, screenshot, signIn } from "./browser";

let browser: Browser;
beforeAll(async () => {
  browser = await launch();
});
afterAll(async () => {
  await browser?.close();
});

const PAGES: [string, string][] = [
  ["/admin/policies", "Policies"],
  ["/admin/policies/new", "New policy"],
  ["/admin/requests", "Requests"],
  ["/admin/tasks", "My tasks"],
  ["/admin/deliveries", "Deliveries"],
  ["/admin/callers", "Callers"],
  ["/admin/delegations", "Delegations"],
  ["/admin/audit", "Audit log"],
];

describe("the admin shell", () => {
  it("signs in through the dev picker, and every page has its heading and passes axe", async () => {
    const { context, page } = await newPage(browser);
    await page.goto("/admin/policies");
    await page.getByRole("heading", { level: 1, name: "Sign in" }).waitFor();
    await expectAccessible(page, "sign-in");
    await screenshot(page, "sign-in");

    await signIn(page, "carol", ["AWE_ADMIN"], "/admin/policies");
    await page.getByRole("heading", { level: 1, name: "Policies" }).waitFor();
    await expect.poll(() => page.getByRole("banner").getByText("carol", { exact: true }).count()).toBeGreaterThan(0);
    const nav = page.getByRole("navigation", { name: "Main" });
    for (const name of ["Policies", "Requests", "My tasks", "Deliveries", "Callers", "Delegations", "Audit log"]) {
      expect(await nav.getByRole("link", { name, exact: true }).count(), name).toBe(1);
    }
    for (const [path, heading] of PAGES) {
      await page.goto(path); // a reload on a deep link: the SPA fallback serves it
      await page.getByRole("heading", { level: 1, name: heading, exact: true }).waitFor();
      await expectAccessible(page, path);
    }
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { level: 1, name: "Sign in" }).waitFor();
    await context.close();
  });

  it("shows a user without admin or viewer roles only what they can use", async () => {
    const { context, page } = await newPage(browser);
    await signIn(page, "alice", []);
    await page.getByRole("heading", { level: 1, name: "My tasks" }).waitFor();
    const nav = page.getByRole("navigation", { name: "Main" });
    expect(await nav.getByRole("link", { name: "Policies" }).count()).toBe(0);
    expect(await nav.getByRole("link", { name: "My tasks" }).count()).toBe(1);
    await context.close();
  });

  it("works in a narrow window: the navigation opens from the menu button", async () => {
    const { context, page } = await newPage(browser, { width: 390, height: 800 });
    await signIn(page, "carol", ["AWE_ADMIN"], "/admin/policies");
    await page.getByRole("heading", { level: 1, name: "Policies" }).waitFor();
    await page.getByRole("button", { name: "Toggle navigation" }).click();
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Requests" }).click();
    await page.getByRole("heading", { level: 1, name: "Requests" }).waitFor();
    await expectAccessible(page, "narrow requests");
    await context.close();
  });
});
