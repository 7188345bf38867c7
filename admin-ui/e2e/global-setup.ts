// Starts one real `countersign serve` for the end-to-end tests: embedded SQLite in a temporary
// directory, dev auth, test hooks on, a free port, serving the built UI (npm run build first).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    baseUrl: string;
  }
}

const ROOT = resolve(import.meta.dirname, "../..");
const UI_BUILD = join(ROOT, "src/countersign/static/admin");

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => res(port));
    });
  });
}

async function waitHealthy(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`countersign serve exited (${child.exitCode}):\n${log()}`);
    try {
      const r = await fetch(`${url}/v1/health`);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`countersign serve did not become healthy in 60 s:\n${log()}`);
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (!existsSync(join(UI_BUILD, "index.html"))) {
    throw new Error(`no UI build in ${UI_BUILD}: run \`npm run build\` first`);
  }
  const venv = process.env.VENV ? resolve(ROOT, process.env.VENV) : join(ROOT, ".venv");
  const bin = join(venv, "bin", "countersign");
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run scripts/bootstrap.sh`);

  const dir = mkdtempSync(join(tmpdir(), "countersign-e2e-"));
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  let output = "";
  // Only what the service needs; the caller's COUNTERSIGN_* settings must not leak in.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME ?? dir,
    COUNTERSIGN_ENV: "development",
    COUNTERSIGN_AUTH_MODE: "dev",
    COUNTERSIGN_TEST_HOOKS: "true",
    COUNTERSIGN_DATABASE_URL: `sqlite+aiosqlite:///${join(dir, "countersign.db")}`,
    COUNTERSIGN_DATA_DIR: dir,
    COUNTERSIGN_ADMIN_UI_DIR: UI_BUILD,
    COUNTERSIGN_LOG_LEVEL: "WARNING",
  };
  const child = spawn(bin, ["serve", "--host", "127.0.0.1", "--port", String(port)], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  await waitHealthy(baseUrl, child, () => output);
  project.provide("baseUrl", baseUrl);

  return async () => {
    child.kill("SIGTERM");
    await new Promise((r) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        r(null);
      }, 10_000);
      child.once("exit", () => {
        clearTimeout(timer);
        r(null);
      });
    });
    if (process.env.E2E_KEEP_DATA !== "1") rmSync(dir, { recursive: true, force: true });
  };
}
