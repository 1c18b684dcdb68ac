// vitest settings for the Durable Streams conformance suite (tests/conformance/conformance.test.mjs).
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/conformance/**/*.test.mjs"],
    testTimeout: 30000,
    hookTimeout: 30000,
    // One file; its tests run in order, as the suite's own CI does.
    fileParallelism: false,
  },
});
