// The official Durable Streams conformance suite (@durable-streams/server-conformance-tests) against
// Herald's /ds/ routes. Its CLI cannot find its own tests under node_modules, so this file imports the
// runner. DS_BASE_URL is the credential-adding proxy in front of `wrangler dev` (proxy.mjs).
import { runConformanceTests } from "@durable-streams/server-conformance-tests";

const baseUrl = process.env.DS_BASE_URL;
if (!baseUrl) throw new Error("DS_BASE_URL is required (see tests/e2e/tests/durable_streams.rs)");

runConformanceTests({
  baseUrl,
  longPollTimeoutMs: Number(process.env.DS_LONG_POLL_TIMEOUT_MS ?? 20000),
});
