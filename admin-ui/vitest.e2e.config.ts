import { defineConfig } from "vitest/config";

// End-to-end tests: a real `countersign serve` (e2e/global-setup.ts) driven by Debian's Chromium
// through playwright-core. One file at a time: they share one server and one browser binary.
export default defineConfig({
  test: {
    environment: "node",
    include: ["e2e/**/*.e2e.ts"],
    globalSetup: ["e2e/global-setup.ts"],
    fileParallelism: false,
    testTimeout: 120000,
    hookTimeout: 120000,
  },
});
