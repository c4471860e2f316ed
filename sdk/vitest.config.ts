import { defineConfig } from "vitest/config";

/** Unit tests: no server, no network (`npm test`). */
export default defineConfig({
  test: {
    include: ["test/unit/**/*.test.{ts,tsx}"],
    environment: "node",
  },
});
