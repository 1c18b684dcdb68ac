// Shared by the client scripts: talking to Herald as a publisher, waiting, and the resume scenario that
// every EventSource implementation must pass. A client adapter only opens its EventSource and reports what
// it saw; this module publishes, cuts the stream and checks nothing itself: the Rust test asserts on the
// JSON it prints, so a script cannot pass by mistake.

/** Reads the JSON the Rust test passes as the first argument. */
export function input() {
  return JSON.parse(process.argv[2]);
}

/** Prints the result as one JSON line on stdout (the Rust test parses the last line). */
export function output(result) {
  process.stdout.write(JSON.stringify(result) + '\n');
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts Debian's headless Chromium through playwright-core with a fresh profile (toolchain notes: never a
 * downloaded browser). Returns `{context, close}`; `close` also removes the profile.
 */
export async function launchChromium() {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { chromium } = await import('playwright-core');
  const userDataDir = mkdtempSync(join(tmpdir(), 'herald-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
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
  const close = async () => {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, close };
}

/** Polls `probe` until it returns a truthy value; throws naming `what` after `timeoutMs`. */
export async function waitFor(what, probe, timeoutMs = 30000, everyMs = 25) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function call(cfg, method, path, body) {
  const response = await fetch(cfg.herald + path, {
    method,
    headers: { authorization: `Bearer ${cfg.token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text);
}

/** Publishes one event to a generic stream; returns the id Herald assigned. */
export async function publish(cfg, event, data) {
  const { ids } = await call(cfg, 'POST', `/v1/streams/${cfg.stream}/events`, { event, data });
  return ids[0];
}

/** Closes every subscriber of the stream (POST /v1/streams/<id>/disconnect). */
export function disconnect(cfg) {
  return call(cfg, 'POST', `/v1/streams/${cfg.stream}/disconnect`);
}

/**
 * The resume scenario. `client` is an adapter with
 *   `received()`: the named events seen so far, `[{type, id, data}]` (id = the event's lastEventId),
 *   `state()`: `{readyState, opens, errors: [readyState at each error], unnamed}`,
 *   `requests()`: the stream requests it made, `[{lastEventId, status}]`.
 * It publishes `before` events, cuts the stream from the server while the client is connected, publishes
 * `after` more (half while the client is reconnecting, half once it is back), waits for all, then completes
 * the stream and watches the client stop.
 */
async function resumeSteps(cfg, client, { before = 20, after = 20, quietMs = 3000 } = {}) {
  await waitFor('the first open', async () => (await client.state()).opens >= 1);
  const published = [];
  // Two names, so that a client dispatching on the wrong name, or only to onmessage, loses events.
  const nameOf = (n) => (n % 2 === 0 ? 'tick' : 'job:state_change');
  for (let n = 1; n <= before; n++) {
    const data = { n, stage: `s${n}` };
    published.push({ type: nameOf(n), id: await publish(cfg, nameOf(n), data), data: JSON.stringify(data) });
  }
  const opensAtCut = (await client.state()).opens;
  const cut = await disconnect(cfg);
  // The first half lands while the client is away (it must come from the replay), the second half after
  // it is back (live): both sides of the replay/live seam.
  const half = before + Math.floor(after / 2);
  for (let n = before + 1; n <= before + after; n++) {
    if (n === half + 1) await waitFor('the reconnect', async () => (await client.state()).opens > opensAtCut);
    const data = { n, stage: `s${n}` };
    published.push({ type: nameOf(n), id: await publish(cfg, nameOf(n), data), data: JSON.stringify(data) });
  }
  const total = before + after;
  await waitFor(`${total} events`, async () => (await client.received()).length >= total);
  // Anything still in flight (a duplicate after the seam) would show up here.
  await sleep(500);
  const resumed = { received: await client.received(), state: await client.state() };

  const completeId = await publish(cfg, 'stream.complete', { ok: true });
  const closed = await waitFor('readyState CLOSED', async () => {
    const state = await client.state();
    return state.readyState === 2 ? state : null;
  });
  const requestsAtClose = (await client.requests()).length;
  // Several retry intervals: a client that kept reconnecting would make requests here.
  await sleep(quietMs);
  return {
    published,
    disconnected: cut.disconnected,
    completeId,
    resumed,
    closed,
    requestsAtClose,
    final: { received: await client.received(), state: await client.state() },
    requests: await client.requests(),
  };
}

/** `resumeScenario`, but a failure says what the client had seen, so a timeout is diagnosable. */
export async function resumeScenario(cfg, client, options) {
  try {
    return await resumeSteps(cfg, client, options);
  } catch (error) {
    throw await withClientState(error, client);
  }
}

/** Adds the client's state, what it received and the requests it made to an error's message. */
export async function withClientState(error, client) {
  const seen = {
    state: await client.state().catch(String),
    received: (await client.received().catch(() => [])).map((e) => `${e.type} ${e.id}`),
    requests: await client.requests().catch(String),
  };
  error.message += `\nclient: ${JSON.stringify(seen)}`;
  return error;
}
