// Setting up data through the service's API in an end-to-end test, and the test hooks
// (`COUNTERSIGN_TEST_HOOKS=true`, set by global-setup.ts): the service clock and a synchronous tick.
import { baseUrl } from "./browser";

export async function call<T = unknown>(token: string, method: string, path: string, body?: unknown): Promise<T> {
  const r = await fetch(`${baseUrl()}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return (text ? JSON.parse(text) : null) as T;
}

/** Moves the service clock forward by `seconds` and returns the service's time after it. */
export async function advanceClock(admin: string, seconds: number): Promise<Date> {
  const out = await call<{ now: string }>(admin, "POST", "/v1/_test/clock", { advance_seconds: seconds });
  return new Date(out.now);
}

/** Runs every due timer and delivery now; returns what ran. */
export async function tick(admin: string): Promise<Record<string, number>> {
  return (await call<{ ran: Record<string, number> }>(admin, "POST", "/v1/_test/tick")).ran;
}

export async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}
