// Headless Chromium's own EventSource against Herald, from a page on another origin: the page mints a
// ticket with a CORS fetch (Authorization header, so a preflight), subscribes with ?ticket=, and the
// browser alone reconnects with Last-Event-ID after a server cut and stops at a complete stream's 204.
// Input (argv[2], JSON): {herald, token, stream, pagePort}; the page is http://localhost:<pagePort>, which
// differs from Herald's http://127.0.0.1:<port> in host and port. Output: one JSON line (common.mjs).
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

import { input, output, resumeScenario } from './common.mjs';

const cfg = input();

// The page's own code: what a web app would ship. It holds a token (as a page with a session might),
// trades it for a ticket, and records everything its EventSource does.
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>Herald client page</title>
<script>
window.seen = { received: [], opens: 0, errors: [], unnamed: 0, ticket: null };
window.subscribe = async (herald, token, stream) => {
  const response = await fetch(herald + "/v1/tickets", {
    method: "POST",
    headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
    body: JSON.stringify({ connectionId: stream }),
  });
  if (response.status !== 200) throw new Error("ticket: " + response.status + " " + await response.text());
  const ticket = await response.json();
  window.seen.ticket = { connectionId: ticket.connectionId, expiresAt: ticket.expiresAt };
  const es = new EventSource(herald + "/v1/streams/" + stream + "?ticket=" + encodeURIComponent(ticket.ticket));
  window.es = es;
  for (const type of ["tick", "job:state_change", "stream.complete", "reset", "lagging"]) {
    es.addEventListener(type, (e) => window.seen.received.push({ type, id: e.lastEventId, data: e.data }));
  }
  es.addEventListener("message", () => window.seen.unnamed++);
  es.addEventListener("open", () => window.seen.opens++);
  es.addEventListener("error", () => window.seen.errors.push(es.readyState));
  return window.seen.ticket;
};
</script>
<p>Herald client page</p>
`;

const server = createServer((request, response) => {
  if (request.url === '/') {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(PAGE);
  } else {
    response.writeHead(404);
    response.end();
  }
});
await new Promise((resolve) => server.listen(cfg.pagePort, '127.0.0.1', resolve));

const userDataDir = mkdtempSync(join(tmpdir(), 'herald-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  // Every request the browser makes to the stream, seen from outside the page: the browser's own
  // reconnects carry Last-Event-ID, which page code cannot observe.
  const requests = [];
  const streamPath = `/v1/streams/${cfg.stream}`;
  const pending = [];
  context.on('request', (request) => {
    if (new URL(request.url()).pathname !== streamPath) return;
    const record = { method: request.method(), lastEventId: null, status: null, resourceType: request.resourceType() };
    requests.push(record);
    pending.push(
      request.allHeaders().then((headers) => {
        record.lastEventId = headers['last-event-id'] ?? null;
      }),
    );
  });
  context.on('response', (response) => {
    if (new URL(response.url()).pathname !== streamPath) return;
    const record = requests.findLast((r) => r.status === null);
    if (record) record.status = response.status();
  });

  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  const pageOrigin = `http://localhost:${cfg.pagePort}`;
  await page.goto(pageOrigin + '/');
  const ticket = await page.evaluate(
    ([herald, token, stream]) => window.subscribe(herald, token, stream),
    [cfg.herald, cfg.token, cfg.stream],
  );

  const client = {
    received: () => page.evaluate(() => window.seen.received.slice()),
    state: () =>
      page.evaluate(() => ({
        readyState: window.es.readyState,
        opens: window.seen.opens,
        errors: window.seen.errors.slice(),
        unnamed: window.seen.unnamed,
      })),
    requests: async () => {
      await Promise.all(pending);
      return structuredClone(requests);
    },
  };
  const result = await resumeScenario(cfg, client);
  output({
    client: `chromium ${context.browser()?.version() ?? ''}`.trim(),
    pageOrigin: await page.evaluate(() => location.origin),
    ticket,
    pageErrors,
    ...result,
  });
} finally {
  await context?.close();
  server.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
