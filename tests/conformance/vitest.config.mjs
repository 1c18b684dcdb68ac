// vitest settings for the Durable Streams conformance suite (tests/conformance/conformance.test.mjs).
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/conformance/**/*.test.mjs"],
    testTimeout: 30000,
    hookTimeout: 30000,
    // One file; its tests run in order, as the suite's own CI does.
    fileParallelism: false,
    // The suite's TTL tests (Stream-TTL: 2, then 1.5 s sleeps) leave 0.5 s for each request to
    // arrive, which a loaded 2-core machine sometimes misses; a test gets two more tries. A test
    // that fails three times fails (and the JSON report lists it as failed).
    retry: 2,
  },
});
