import { defineConfig } from "vitest/config";

/**
 * The SDK against the real server: run by crates/wakili-server/tests/sdk.rs, which launches the
 * server, books a consultation, mints tokens and passes them in the file `WAKILI_TEST_FILE` names.
 */
export default defineConfig({
  test: {
    include: ["test/integration/**/*.test.ts"],
    environment: "node",
    testTimeout: 30_000,
    hookTimeout: 30_000,
    fileParallelism: false,
  },
});
