// Headless Chromium's own EventSource against Herald, from a page on another origin: the page mints a
// ticket with a CORS fetch (Authorization header, so a preflight), subscribes with ?ticket=, and the
// browser alone reconnects with Last-Event-ID after a server cut and stops at a complete stream's 204.
// Input (argv[2], JSON): {herald, token, stream, pagePort, mode}; the page is http://localhost:<pagePort>,
// which differs from Herald's http://127.0.0.1:<port> in host and port. `mode` "expiry" runs the ticket
// expiry flow below instead of common.mjs's resume scenario. Output: one JSON line.
import { createServer } from 'node:http';

import {
  disconnect, input, output, publish, launchChromium, resumeScenario, sleep, waitFor, withClientState,
} from './common.mjs';

const cfg = input();

// The page's own code: what a web app would ship. It holds a token (as a page with a session might),
// trades it for a ticket, and records everything its EventSource does.
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>Herald client page</title>
<script>
window.seen = { received: [], opens: 0, errors: [], unnamed: 0, tickets: [], recoveries: 0 };
let lastId = "";
let completed = false;
async function mintTicket(herald, token, stream) {
  const response = await fetch(herald + "/v1/tickets", {
    method: "POST",
    headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
    body: JSON.stringify({ connectionId: stream }),
  });
  if (response.status !== 200) throw new Error("ticket: " + response.status + " " + await response.text());
  const ticket = await response.json();
  window.seen.tickets.push({ connectionId: ticket.connectionId, expiresAt: ticket.expiresAt });
  return ticket.ticket;
}
window.subscribe = async (herald, token, stream, fromId) => {
  let url = herald + "/v1/streams/" + stream + "?ticket=" + encodeURIComponent(await mintTicket(herald, token, stream));
  if (fromId) url += "&lastEventId=" + encodeURIComponent(fromId);
  const es = new EventSource(url);
  window.es = es;
  for (const type of ["tick", "job:state_change", "stream.complete", "reset", "lagging"]) {
    es.addEventListener(type, (e) => {
      window.seen.received.push({ type, id: e.lastEventId, data: e.data });
      if (e.lastEventId) lastId = e.lastEventId;
      if (type === "stream.complete") completed = true;
    });
  }
  es.addEventListener("message", () => window.seen.unnamed++);
  es.addEventListener("open", () => window.seen.opens++);
  es.addEventListener("error", () => {
    window.seen.errors.push(es.readyState);
    // EventSource gave up (it cannot say why: a 401 for an expired ticket and the 204 at the end look
    // alike). Unless the stream said it is complete, do what the README tells pages to do: a new
    // ticket, a new EventSource, resuming with ?lastEventId= from the last id seen.
    if (es.readyState === EventSource.CLOSED && !completed) {
      window.seen.recoveries++;
      window.subscribe(herald, token, stream, lastId);
    }
  });
  return window.seen.tickets[0];
};
</script>
<p>Herald client page</p>
`;

// The README's ticket expiry flow: once the ticket has expired, the browser's own reconnect gets 401 and
// EventSource stops; the page mints a new ticket and resumes with ?lastEventId= (the page code above).
async function expiryScenario(cfg, client) {
  await waitFor('the first open', async () => (await client.state()).opens >= 1);
  const published = [];
  const publishNext = async () => {
    const n = published.length + 1;
    const type = n % 2 === 0 ? 'tick' : 'job:state_change';
    const data = { n, stage: `s${n}` };
    published.push({ type, id: await publish(cfg, type, data), data: JSON.stringify(data) });
  };
  for (let i = 0; i < 5; i++) await publishNext();
  await waitFor('5 events', async () => (await client.received()).length >= 5);
  const [{ expiresAt }] = await client.tickets();
  // Past the expiry by more than a second: expiry is checked in whole seconds.
  await sleep(Math.max(0, (expiresAt + 1) * 1000 + 200 - Date.now()));
  const cut = await disconnect(cfg);
  // Published while the page is between its dead EventSource and the new one: must come from the replay.
  for (let i = 0; i < 5; i++) await publishNext();
  await waitFor('the page to resubscribe', async () => (await client.state()).opens >= 2);
  for (let i = 0; i < 5; i++) await publishNext();
  await waitFor('15 events', async () => (await client.received()).length >= 15);
  await sleep(500);
  return {
    published,
    disconnected: cut.disconnected,
    received: await client.received(),
    state: await client.state(),
    requests: await client.requests(),
  };
}

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

let chromium;
try {
  chromium = await launchChromium();
  const { context } = chromium;
  // Every request the browser makes to the stream, seen from outside the page: the browser's own
  // reconnects carry Last-Event-ID, which page code cannot observe.
  const requests = [];
  const records = new Map();
  const streamPath = `/v1/streams/${cfg.stream}`;
  const pending = [];
  context.on('request', (request) => {
    const url = new URL(request.url());
    if (url.pathname !== streamPath) return;
    const record = {
      method: request.method(),
      resourceType: request.resourceType(),
      lastEventId: null,
      lastEventIdQuery: url.searchParams.get('lastEventId'),
      status: null,
    };
    requests.push(record);
    records.set(request, record);
    pending.push(
      request.allHeaders().then((headers) => {
        record.lastEventId = headers['last-event-id'] ?? null;
      }),
    );
  });
  context.on('response', (response) => {
    const record = records.get(response.request());
    if (record) record.status = response.status();
  });

  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  const pageOrigin = `http://localhost:${cfg.pagePort}`;
  await page.goto(pageOrigin + '/');
  await page.evaluate(
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
        recoveries: window.seen.recoveries,
      })),
    tickets: () => page.evaluate(() => window.seen.tickets.slice()),
    requests: async () => {
      await Promise.all(pending);
      return structuredClone(requests);
    },
  };
  const result =
    cfg.mode === 'expiry'
      ? await expiryScenario(cfg, client).catch(async (error) => {
          throw await withClientState(error, client);
        })
      : await resumeScenario(cfg, client);
  output({
    client: `chromium ${context.browser()?.version() ?? ''}`.trim(),
    pageOrigin: await page.evaluate(() => location.origin),
    tickets: await page.evaluate(() => window.seen.tickets),
    pageErrors,
    ...result,
  });
} finally {
  await chromium?.close();
  server.close();
}
