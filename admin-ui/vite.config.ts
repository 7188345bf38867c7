/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The build goes straight into the Python package, which `countersign serve` serves at /admin
// (with an SPA fallback to index.html). That folder is gitignored: the test command and
// `make serve` build it (scripts/build-ui.sh).
const outDir = fileURLToPath(new URL("../src/countersign/static/admin", import.meta.url));

export default defineConfig({
  base: "/admin/",
  plugins: [react()],
  build: {
    outDir,
    emptyOutDir: true,
    chunkSizeWarningLimit: 2500,
  },
  server: {
    // `npm run dev` against a `make serve` on the default port.
    proxy: { "/v1": "http://127.0.0.1:8000" },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    setupFiles: ["src/test/setup.ts"],
    css: false,
    testTimeout: 20000,
    pool: "threads",
    maxWorkers: 2,
  },
});
