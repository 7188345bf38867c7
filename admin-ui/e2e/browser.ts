// Shared end-to-end helpers: Debian's Chromium through playwright-core (no browser download),
// axe on every page, screenshots for docs/images/, and signing in through the real sign-in page.
import AxeBuilder from "@axe-core/playwright";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { expect, inject } from "vitest";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const IMAGES = resolve(import.meta.dirname, "../../docs/images");

export function baseUrl(): string {
  return inject("baseUrl");
}

export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

/** A fresh context (axe needs a page from browser.newContext()) at 1280 px unless told otherwise. */
export async function newPage(browser: Browser, viewport = { width: 1280, height: 860 }): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport, baseURL: baseUrl() });
  const page = await context.newPage();
  page.on("pageerror", (e) => {
    throw e;
  });
  return { context, page };
}

/** Waits for running transitions (a dialog fading in) to end; endless ones (spinners) do not count. */
export async function settle(page: Page): Promise<void> {
  await page.waitForFunction(
    () => document.getAnimations().every((a) => a.playState !== "running" || a.effect?.getComputedTiming().iterations === Infinity),
    undefined,
    { timeout: 5_000 },
  );
}

/** Axe on the page as it is now (once transitions end); serious and critical violations fail the test. */
export async function expectAccessible(page: Page, label: string): Promise<void> {
  await settle(page);
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const summary = bad.map((v) => `${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.slice(0, 5).map((n) => `${n.target.join(" ")}: ${(n.failureSummary ?? "").replace(/\s+/g, " ").slice(0, 220)}`).join("\n  ")}`);
  expect(summary, `axe on ${label}`).toEqual([]);
}

/**
 * The whole page as a person sees it scrolled to the top: the window is made as tall as the page
 * for the shot (a full-page capture would leave the fixed header and navigation one window high,
 * wherever the page was scrolled), and the pointer is moved off any control it hovers.
 * `firstWindow: true` takes only the first window-full (the README's picture).
 */
export async function screenshot(page: Page, name: string, { firstWindow = false } = {}): Promise<void> {
  mkdirSync(IMAGES, { recursive: true });
  const viewport = page.viewportSize();
  await page.mouse.move(0, 0);
  await page.evaluate(() => window.scrollTo(0, 0));
  if (viewport && !firstWindow) {
    const height = await page.evaluate(() => document.documentElement.scrollHeight);
    await page.setViewportSize({ width: viewport.width, height: Math.max(viewport.height, height) });
  }
  await settle(page);
  await page.screenshot({ path: join(IMAGES, `${name}.png`) });
  if (viewport && !firstWindow) await page.setViewportSize(viewport);
}

/** Sign in through the dev picker, as a person would. */
export async function signIn(page: Page, user: string, roles: string[] = ["AWE_ADMIN"], next = "/admin/"): Promise<void> {
  await page.goto(`/admin/sign-in?next=${encodeURIComponent(next)}`);
  await page.getByRole("combobox", { name: "Username" }).fill(user);
  const rolesBox = page.getByRole("combobox", { name: "Roles" });
  // The picker starts with AWE_ADMIN selected; make the selection exactly `roles`.
  await page.keyboard.press("Escape");
  for (const role of ["AWE_ADMIN", "AWE_VIEWER"]) {
    const selected = (await page.locator(`.mantine-MultiSelect-pill:has-text("${role}")`).count()) > 0;
    if (selected !== roles.includes(role)) {
      // Keyboard, as a person using the picker without a mouse would (the input itself is covered).
      await rolesBox.focus();
      await page.keyboard.press("ArrowDown");
      await page.getByRole("option", { name: role }).click();
      await page.keyboard.press("Escape");
    }
  }
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Main" }).waitFor();
}

/** A token straight from the service, for setting up data through the API in a test. */
export async function devToken(sub: string, roles: string[] = ["AWE_ADMIN"], azp?: string): Promise<string> {
  const r = await fetch(`${baseUrl()}/v1/dev/token`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ sub, roles, ...(azp ? { azp } : {}) }) });
  if (!r.ok) throw new Error(`dev token: ${r.status} ${await r.text()}`);
  return ((await r.json()) as { access_token: string }).access_token;
}
