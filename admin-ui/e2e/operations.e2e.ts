// The operator's path, against a real service and a real webhook receiver on loopback:
// a published two-stage policy and requests created through the API (as a caller would), both
// stages approved from My tasks by two people signed in through the dev picker, the approved
// request with its timeline verified, its deliveries and its signed diagram link opened without a
// token; a delivery driven to exhaustion with the service clock and retried from the Deliveries
// page; a caller secret rotated (shown once); a delegation; the audit log. Axe on every page,
// screenshots of each under docs/images/ (1280 px, and about 420 px for the narrow ones).
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import type { DeliveryOut, RequestCreated, SecretCreated } from "../src/api/schema";
import { devToken, expectAccessible, IMAGES, launch, newPage, screenshot, signIn } from "./browser";
import { Receiver } from "./receiver";
import { advanceClock, call, tick, until } from "./service";

const POLICY = "e2e.ops.payment";
const ARTIFACT_TYPE = "e2e.payment";
const CALLER = "e2e-registry";
const NARROW = { width: 420, height: 900 };

let browser: Browser;
let receiver: Receiver;
let admin: string; // an admin's token, for setup and the test hooks
let approvedId: string; // the request approved from My tasks
let stuckId: string; // the request whose first delivery is driven to exhaustion

const h1 = (page: Page, name: string) => page.getByRole("heading", { level: 1, name, exact: true });

async function deliveries(requestId: string): Promise<DeliveryOut[]> {
  return call<DeliveryOut[]>(admin, "GET", `/v1/admin/deliveries?request_id=${requestId}&limit=500`);
}

beforeAll(async () => {
  receiver = new Receiver();
  await receiver.start();
  receiver.reply("/hooks/down", 500);
  browser = await launch();

  admin = await devToken("ops-admin", ["AWE_ADMIN"]);
  // This file's own policy (each e2e file is independent): officer review by alice, then bob.
  await call(admin, "POST", "/v1/policies", {
    policy_key: POLICY,
    name: "Payment approval",
    description: "An officer reviews the payment, then finance signs it off.",
    artifact_type: ARTIFACT_TYPE,
    forbid_self_approval: true,
    forbid_repeat_approvers: true,
    allow_request_changes: true,
    stages: [
      {
        stage_order: 1,
        name: "Officer review",
        mode: "any-n",
        mode_value: 1,
        on_empty: "block",
        sla_hours: 72,
        rules: [{ rule_type: "user", rule_value: { user_id: "alice" }, kind: "approver" }],
      },
      {
        stage_order: 2,
        name: "Finance sign-off",
        mode: "all",
        on_empty: "block",
        rules: [{ rule_type: "user", rule_value: { user_id: "bob" }, kind: "approver" }],
      },
    ],
  });
  await call(admin, "POST", `/v1/policies/${POLICY}/versions/1/activate`);
  await call<SecretCreated>(admin, "POST", `/v1/admin/callers/${CALLER}/secrets`, {});

  // The caller: a service token whose azp is the caller id.
  const caller = await devToken("registry-svc", [], CALLER);
  const create = (artifactId: string, path: string, context: Record<string, unknown>) =>
    call<RequestCreated>(caller, "POST", "/v1/requests", {
      policy_key: POLICY,
      artifact_type: ARTIFACT_TYPE,
      artifact_id: artifactId,
      context,
      requester: "rita",
      callback_url: receiver.url(path),
    });
  approvedId = (await create("PAY-1001", "/hooks/ok", { amount: 1250, payee: "Northfield Co-op", district: "D1" })).request_id;
  stuckId = (await create("PAY-1002", "/hooks/down", { amount: 480, payee: "Riverside Clinic", district: "D2" })).request_id;
});

afterAll(async () => {
  await browser?.close();
  await receiver?.stop();
});

describe("operating approvals", () => {
  it("approves both stages from My tasks as two people", async () => {
    // Stage 1: alice (no admin or viewer role) sees both payments in her inbox.
    const { context, page } = await newPage(browser);
    await signIn(page, "alice", [], "/admin/tasks");
    await h1(page, "My tasks").waitFor();
    const card = page.getByRole("article", { name: `${ARTIFACT_TYPE} PAY-1001` });
    await card.waitFor();
    await page.getByRole("article", { name: `${ARTIFACT_TYPE} PAY-1002` }).waitFor();
    await expectAccessible(page, "my tasks");
    await screenshot(page, "tasks");

    const narrow = await newPage(browser, NARROW);
    await signIn(narrow.page, "alice", [], "/admin/tasks");
    await narrow.page.getByRole("article", { name: `${ARTIFACT_TYPE} PAY-1001` }).waitFor();
    await expectAccessible(narrow.page, "narrow my tasks");
    await screenshot(narrow.page, "tasks-narrow");
    await narrow.context.close();

    await card.getByLabel("Comment").fill("Invoice matches the purchase order.");
    await card.getByRole("button", { name: "Approve" }).click();
    await page.getByText(/Approved e2e\.payment PAY-1001 \(stage 1\): stage approved, request in review/).waitFor();
    await expect.poll(() => card.count()).toBe(0); // decided: no longer in the "To do" list
    await expectAccessible(page, "my tasks after a decision");
    await context.close();

    // Stage 2: bob, a different person, signs it off.
    const second = await newPage(browser);
    await signIn(second.page, "bob", [], "/admin/tasks");
    const bobsCard = second.page.getByRole("article", { name: `${ARTIFACT_TYPE} PAY-1001` });
    await bobsCard.waitFor();
    await expect.poll(() => bobsCard.textContent()).toContain("stage 2");
    await bobsCard.getByRole("button", { name: "Approve" }).click();
    await second.page.getByText(/Approved e2e\.payment PAY-1001 \(stage 2\): stage approved, request approved/).waitFor();
    await second.context.close();
  });

  it("shows the approved request: timeline verified, deliveries sent, diagram link without a token", async () => {
    // Every event of the request reached the receiver (signed) before we look.
    await until("request_approved delivered", async () => receiver.received(approvedId, "request_approved").length > 0);
    await until("no pending delivery", async () => (await deliveries(approvedId)).every((d) => d.status === "delivered"));
    expect(receiver.calls.filter((c) => c.requestId === approvedId).every((c) => c.signed)).toBe(true);

    const { context, page } = await newPage(browser);
    await signIn(page, "carol", ["AWE_ADMIN"], "/admin/requests");
    await h1(page, "Requests").waitFor();
    const row = page.getByRole("row", { name: new RegExp(`${ARTIFACT_TYPE} PAY-1001`) });
    await expect.poll(() => row.textContent()).toContain("approved");
    await expectAccessible(page, "requests");
    await screenshot(page, "requests");

    await row.getByRole("link", { name: `${ARTIFACT_TYPE} PAY-1001` }).click();
    await h1(page, `${ARTIFACT_TYPE} PAY-1001`).waitFor();
    const summary = page.getByRole("region", { name: "Summary" });
    await expect.poll(() => summary.textContent()).toContain("approved");
    await page.getByRole("img", { name: "Workflow diagram" }).waitFor();

    const timeline = page.getByRole("region", { name: "Timeline" });
    await timeline.getByText("request approved").waitFor();
    await timeline.getByRole("button", { name: "Verify chain" }).click();
    await timeline.getByText(/^Chain valid \(\d+ events\)$/).waitFor();

    const sent = page.getByRole("region", { name: "Deliveries" });
    const approvedDelivery = sent.getByRole("row", { name: /request_approved/ });
    await expect.poll(() => approvedDelivery.textContent()).toContain("delivered");
    await expectAccessible(page, "request detail");
    await screenshot(page, "request-detail");
    await screenshot(page, "overview", { firstWindow: true }); // README.md

    // The signed diagram link, opened where there is no token at all.
    await page.getByRole("button", { name: "Diagram link" }).click();
    const linkField = page.getByRole("textbox", { name: "Diagram link" });
    await linkField.waitFor();
    const url = await linkField.inputValue();
    expect(url).toMatch(/diagram\.svg\?exp=\d+&sig=/);
    await expectAccessible(page, "diagram link dialog");
    await page.keyboard.press("Escape");

    const anonymous = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const svgPage = await anonymous.newPage();
    const response = await svgPage.goto(url);
    expect(response?.status()).toBe(200);
    expect(response?.headers()["content-type"]).toContain("image/svg+xml");
    expect(response?.headers()["content-security-policy"]).toContain("default-src 'none'");
    const svg = await svgPage.content();
    expect(svg).toContain("<svg");
    expect(svg).toContain("Finance sign-off");
    expect(svg).toContain("bob");
    await svgPage.screenshot({ path: join(IMAGES, "request-diagram-link.png") });
    await anonymous.close();

    // The same page in a narrow window.
    const narrow = await newPage(browser, NARROW);
    await signIn(narrow.page, "carol", ["AWE_ADMIN"], `/admin/requests/${approvedId}`);
    await h1(narrow.page, `${ARTIFACT_TYPE} PAY-1001`).waitFor();
    await narrow.page.getByRole("img", { name: "Workflow diagram" }).waitFor();
    await narrow.page.getByRole("region", { name: "Deliveries" }).getByRole("row", { name: /request_approved/ }).waitFor();
    await expectAccessible(narrow.page, "narrow request detail");
    await screenshot(narrow.page, "request-detail-narrow");
    await narrow.context.close();
    await context.close();
  });

  it("retries an exhausted delivery from the Deliveries page", async () => {
    // The receiver of PAY-1002 answers 500: walk the service clock through the retry schedule
    // (about 25 h) until its first delivery gives up.
    const first = async () => (await deliveries(stuckId)).find((d) => d.sequence === 1);
    for (let i = 0; ; i++) {
      expect(i, "attempts before exhaustion").toBeLessThan(30);
      const d = await until("the first delivery's attempt", async () => {
        const row = await first();
        return row && (row.status === "exhausted" || row.last_attempt_at) ? row : null;
      });
      if (d.status === "exhausted") break;
      if (d.status === "pending" && d.next_attempt_at) {
        const now = await advanceClock(admin, 0);
        const wait = (new Date(d.next_attempt_at).getTime() - now.getTime()) / 1000;
        const attempt = d.attempt;
        await advanceClock(admin, Math.max(0, wait) + 1);
        await tick(admin);
        await until(`attempt ${attempt + 1}`, async () => {
          const row = await first();
          return row && (row.attempt > attempt || row.status !== "pending") ? row : null;
        });
      }
    }
    expect(receiver.received(stuckId, "request_created").every((c) => c.answered === 500)).toBe(true);
    receiver.reply("/hooks/down", 204); // the receiver is fixed

    const { context, page } = await newPage(browser);
    await signIn(page, "carol", ["AWE_ADMIN"], "/admin/requests?stuck=true");
    const stuckRow = page.getByRole("row", { name: new RegExp(`${ARTIFACT_TYPE} PAY-1002`) });
    await expect.poll(() => stuckRow.textContent()).toContain("Delivery of request_created exhausted: HTTP 500: receiver says 500");
    await expectAccessible(page, "stuck requests");

    await page.goto("/admin/deliveries?status=exhausted");
    await h1(page, "Deliveries").waitFor();
    const row = page.getByRole("row", { name: /request_created/ }).filter({ hasText: "exhausted" });
    await expect.poll(() => row.textContent()).toContain("HTTP 500");
    await row.getByRole("button", { name: /^Attempts of request_created/ }).click();
    const attempts = page.getByRole("table", { name: "Attempts" });
    await expect.poll(() => attempts.getByRole("row").count()).toBe(10); // header + 9 attempts
    await page.getByRole("button", { name: "Retry all matching" }).waitFor();
    await expectAccessible(page, "exhausted deliveries");
    await screenshot(page, "deliveries");

    // Retry it from the list of this request's deliveries and watch it go through.
    await page.goto(`/admin/deliveries?request_id=${stuckId}`);
    const mine = page.getByRole("row", { name: /request_created/ }).filter({ hasText: "#1" });
    await expect.poll(() => mine.textContent()).toContain("exhausted");
    await mine.getByRole("button", { name: "Retry" }).click();
    await page.getByText("request_created re-queued").waitFor();
    await expect.poll(() => mine.textContent(), { timeout: 20_000 }).toContain("delivered");
    expect(receiver.received(stuckId, "request_created").at(-1)?.answered).toBe(204);
    await mine.getByRole("button", { name: /^Attempts of request_created/ }).click();
    await expect.poll(() => page.getByRole("table", { name: "Attempts" }).textContent()).toContain("manual");
    await expectAccessible(page, "retried delivery");
    await context.close();
  });

  it("rotates a caller secret and shows the new one once", async () => {
    const { context, page } = await newPage(browser);
    await context.grantPermissions(["clipboard-read", "clipboard-write"]);
    await signIn(page, "carol", ["AWE_ADMIN"], `/admin/callers?caller=${CALLER}`);
    await h1(page, "Callers").waitFor();
    const secrets = page.getByRole("table", { name: "Secrets" });
    await expect.poll(() => secrets.getByRole("row").count()).toBe(2);
    await secrets.getByRole("button", { name: "Rotate" }).click();
    const rotate = page.getByRole("dialog", { name: "Rotate secret" });
    await rotate.getByLabel("Grace hours").fill("48");
    await expectAccessible(page, "rotate dialog");
    await rotate.getByRole("button", { name: "Rotate secret" }).click();

    const reveal = page.getByRole("dialog", { name: "New secret" });
    await reveal.getByText("Shown only once").waitFor();
    const value = (await reveal.getByLabel("Secret value").textContent()) ?? "";
    expect(value).toMatch(/^whsec_[A-Za-z0-9+/=]{40,}$/);
    await expectAccessible(page, "secret reveal");
    await screenshot(page, "callers-secret-reveal");
    await reveal.getByRole("button", { name: "Copy" }).click();
    await reveal.getByRole("button", { name: "Copied" }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(value);
    await reveal.getByRole("button", { name: "Done" }).click();
    await reveal.waitFor({ state: "hidden" });

    await expect.poll(() => secrets.getByRole("row").count()).toBe(3);
    await expect.poll(() => secrets.textContent()).toContain("rotated");
    expect(await page.content()).not.toContain(value); // never shown again
    await expectAccessible(page, "callers");
    await screenshot(page, "callers");
    await context.close();
  });

  it("records a delegation and shows the audit log", async () => {
    const { context, page } = await newPage(browser);
    await signIn(page, "carol", ["AWE_ADMIN"], "/admin/delegations");
    await h1(page, "Delegations").waitFor();
    await page.getByRole("combobox", { name: "For user" }).fill("dave");
    await page.getByRole("combobox", { name: "Delegate to" }).fill("carol");
    await page.keyboard.press("Escape");
    await page.getByLabel("Reason").fill("Annual leave");
    await page.getByRole("button", { name: "Create delegation" }).click();
    const table = page.getByRole("table", { name: "Delegations" });
    await expect.poll(() => table.getByRole("row", { name: /dave/ }).textContent()).toContain("Annual leave");
    await expectAccessible(page, "delegations");
    await screenshot(page, "delegations");

    await page.goto("/admin/audit");
    await h1(page, "Audit log").waitFor();
    const entries = page.getByRole("table", { name: "Audit entries" });
    const rotated = entries.getByRole("row", { name: /secret\.rotate/ }).first();
    await rotated.waitFor();
    await rotated.getByRole("button", { name: /^Before and after of/ }).click();
    await page.getByRole("group", { name: "After" }).first().waitFor();
    await expectAccessible(page, "audit log");
    await screenshot(page, "audit");
    await context.close();
  });

  it("fits the operator pages in a narrow window", async () => {
    const { context, page } = await newPage(browser, NARROW);
    await signIn(page, "carol", ["AWE_ADMIN"], "/admin/requests");
    const pages: [string, string, string, () => Promise<void>][] = [
      ["/admin/requests", "Requests", "requests-narrow", () => page.getByRole("link", { name: `${ARTIFACT_TYPE} PAY-1001` }).waitFor()],
      [`/admin/deliveries?request_id=${stuckId}`, "Deliveries", "deliveries-narrow", () => page.getByRole("row", { name: /request_created/ }).waitFor()],
      [`/admin/callers?caller=${CALLER}`, "Callers", "callers-narrow", () => page.getByRole("button", { name: "Rotate" }).waitFor()],
      ["/admin/delegations", "Delegations", "delegations-narrow", () => page.getByRole("row", { name: /dave/ }).waitFor()],
      ["/admin/audit", "Audit log", "audit-narrow", () => page.getByRole("row", { name: /secret\.rotate/ }).first().waitFor()],
    ];
    for (const [path, heading, image, loaded] of pages) {
      await page.goto(path);
      await h1(page, heading).waitFor();
      await loaded();
      // Nothing wider than the window: tables become one card per row.
      expect(await page.evaluate(() => document.documentElement.scrollWidth), `${path} scrolls sideways`).toBeLessThanOrEqual(NARROW.width);
      await expectAccessible(page, `narrow ${path}`);
      await screenshot(page, image);
    }
    await context.close();
  });
});
