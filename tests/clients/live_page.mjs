// Headless Chromium on Herald's live page (the worker's static assets at `/`). The script plays a person and
// a plan runner: it opens the page with a token in the fragment, connects to the SQLMesh stream, drives a plan
// through its stages over HTTP, presses the page's Cancel button, lets the runner honour it, cuts the stream
// from the server, then watches a runner job (steps with output, a cut during which the log moves past the
// page, and the job's end). At each checkpoint it records what the page shows (read from the DOM) and saves
// screenshots. It checks nothing itself: the Rust test asserts on the JSON it prints.
// Input (argv[2], JSON): {herald, token, job, screenshots}, or {mode: "link", link, connection} to follow the
// link scripts/dev.sh printed and receive one event. Output: one JSON line.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { input, launchChromium, output, sleep, waitFor } from './common.mjs';

const cfg = input();

async function call(method, path, body) {
  const response = await fetch(cfg.herald + path, {
    method,
    headers: { authorization: `Bearer ${cfg.token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const runner = (move) => call('POST', '/api/plan/stages', move);

/** What the page shows, read from the DOM the way a person would read the screen. */
function readPage() {
  const $ = (id) => document.getElementById(id);
  const rows = [...$('log').tBodies[0].rows];
  return {
    status: $('status').dataset.status,
    counts: Object.fromEntries(['events', 'heartbeats', 'reconnects', 'resets']
      .map((name) => [name, Number($(`count-${name}`).textContent)])),
    lastId: $('last-id').textContent,
    streamUrl: $('stream-url').textContent,
    problem: $('problem').hidden ? null : $('problem').textContent,
    planShown: !$('plan').hidden,
    plan: $('plan').dataset.plan ?? null,
    cancelEnabled: !$('cancel-plan').disabled,
    trackers: Object.fromEntries([...document.querySelectorAll('.tracker')].map((tracker) => [
      tracker.dataset.tracker,
      {
        status: tracker.dataset.status,
        order: [...tracker.querySelectorAll('.stage')].map((stage) => stage.dataset.stage),
        stages: Object.fromEntries([...tracker.querySelectorAll('.stage')].map((stage) => [
          stage.dataset.stage,
          {
            status: stage.dataset.status,
            shown: stage.querySelector('.badge').textContent,
            duration: stage.querySelector('.duration').textContent,
            details: stage.querySelector('.details').textContent,
            barWidth: parseFloat(stage.querySelector('.bar').style.width) || 0,
          },
        ])),
      },
    ])),
    jobShown: !$('job').hidden,
    jobComplete: $('job').dataset.complete === 'true',
    steps: [...document.querySelectorAll('#steps li')].map((li) => ({
      id: li.dataset.step,
      status: li.dataset.status,
      name: li.querySelector('b').textContent,
      output: li.querySelector('pre')?.textContent ?? '',
    })),
    log: rows.map((row) => ({
      kind: row.dataset.kind, id: row.cells[2].textContent, event: row.cells[3].textContent,
      text: row.cells[4].textContent,
    })),
  };
}

/**
 * The link scripts/dev.sh prints, as a person would use it: open it, connect to a generic stream, and
 * publish the README's example event with the token from the link.
 */
async function linkScenario(page, until, result) {
  const origin = new URL(cfg.link).origin;
  const token = new URL(cfg.link).hash.replace('#token=', '');
  const publish = async (body) => {
    const response = await fetch(`${origin}/v1/streams/${cfg.connection}/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (response.status !== 200) throw new Error(`publish: ${response.status} ${await response.text()}`);
  };
  await page.goto(cfg.link);
  // The stream exists once something was published to it: the page's stream list shows it (hubs
  // report within HERALD_DIRECTORY_REPORT_MS, the page lists again every few seconds), and picking
  // it connects.
  await publish({ event: 'job:state_change', data: { id: 'j0', state: 'waiting' } });
  const row = `#streams li[data-connection="${cfg.connection}"] button`;
  await page.waitForSelector(row, { timeout: 20000 });
  result.listed = await page.evaluate(() =>
    [...document.querySelectorAll('#streams li')].map((li) => li.dataset.connection));
  await page.click(row);
  await until('the stream to open', (s) => s.status === 'open');
  result.connectedTo = await page.evaluate(() => document.getElementById('stream-url').textContent);
  await publish({ event: 'job:state_change', data: { id: 'j1', state: 'active' } });
  result.received = await until('the event', (s) => s.counts.events >= 1);
}

/** The whole tour: a plan and its cancel, heartbeats, a cut, a runner job with a reset, a bad token. */
async function tour(page, read, until, result) {
  mkdirSync(cfg.screenshots, { recursive: true });
  // A person follows the link scripts/dev.sh prints: the token rides in the fragment.
  await page.goto(`${cfg.herald}/#token=${cfg.token}&family=sqlmesh`);
  result.title = await page.title();
  result.addressAfterLoad = await page.evaluate(() => location.href);
  result.form = await page.evaluate(() => ({
    tokenFilled: document.getElementById('token').value.length,
    family: document.getElementById('family').value,
    connection: document.getElementById('connection').value,
  }));
  await page.click('#open');
  result.connected = await until('the SQLMesh stream to open', (s) => s.status === 'open');

  // The plan runner: an apply plan, the overview's three stages, then the apply tracker up to a running
  // backfill.
  await call('POST', '/api/commands/apply', { environment: 'dev' });
  await runner({ op: 'start', stage: 'validation' });
  await sleep(150);
  await runner({ op: 'stop', stage: 'validation', success: true });
  await runner({ op: 'start', stage: 'changes', details: { added: ['sushi.orders'], removed: [] } });
  await runner({ op: 'stop', stage: 'changes', success: true });
  await runner({ op: 'start', stage: 'backfills', details: { models: ['sushi.orders'] } });
  await runner({ op: 'stop', stage: 'backfills', success: true });
  await runner({ op: 'finish', tracker: 'overview', success: true });
  await runner({ op: 'start', stage: 'creation', details: { total_tasks: 2, num_tasks: 0 } });
  await sleep(100);
  await runner({ op: 'stop', stage: 'creation', success: true });
  await runner({ op: 'start', stage: 'backfill', details: { tasks: { 'sushi.orders': { completed: 0, total: 4 } } } });
  await runner({ op: 'update', stage: 'backfill', details: { tasks: { 'sushi.orders': { completed: 3 } } } });
  result.running = await until('a running backfill with 3 tasks done',
    (s) => s.trackers.apply?.stages.backfill?.status === 'init' && s.trackers.apply.stages.backfill.details.includes('"completed":3'));
  await page.screenshot({ path: join(cfg.screenshots, 'live-page-plan-running.png'), fullPage: true });

  // A person presses Cancel; the runner, which watches the stream too, stops its stage unsuccessfully.
  await page.click('#cancel-plan');
  result.cancelling = await until('the cancel stage to run', (s) => s.trackers.cancel?.stages.cancel?.status === 'init');
  await runner({ op: 'stop', stage: 'backfill', success: false });
  result.cancelled = await until('the plan to end cancelled', (s) => s.plan === 'cancelled');
  await page.screenshot({ path: join(cfg.screenshots, 'live-page-plan-cancelled.png'), fullPage: true });

  // Heartbeats (the test runs Herald with a short interval) and a server cut: the page reconnects with
  // Last-Event-ID and nothing arrives twice.
  result.heartbeats = await until('two pings', (s) => s.counts.heartbeats >= 2);
  const beforeCut = await read();
  await call('POST', '/v1/streams/default/disconnect');
  result.reconnected = await until('a reconnect', (s) => s.counts.reconnects >= 1 && s.status === 'open');
  await call('POST', '/v1/streams/default/events', { event: 'note', data: { after: 'cut' } });
  result.afterCut = await until('the event published after the cut', (s) => s.log.some((row) => row.event === 'note'));
  result.beforeCut = beforeCut;
  // A fresh connection (no Last-Event-ID) gets the current trackers first: as SQLMesh, Herald forgets
  // a finished apply and cancel (they come as `{}`), so only the overview is drawn again.
  await page.click('#open');
  result.fresh = await until('the plan redrawn from the trackers',
    (s) => s.status === 'open' && s.counts.events >= 3 && s.trackers.overview !== undefined);

  // A runner job in the same tab: steps and their output.
  await page.selectOption('#family', 'runner');
  await page.fill('#connection', cfg.job);
  await page.click('#open');
  await until('the job stream to open', (s) => s.status === 'open' && s.streamUrl.includes(cfg.job));
  const job = (body) => call('POST', `/runner-jobs/${cfg.job}/events`, body);
  await job({ event: 'step.started', data: { stepId: 's1', name: 'Checkout', phase: 'setup' } });
  await job({ event: 'step.output', data: { stepId: 's1', chunk: 'cloning...\n' } });
  await job({ event: 'step.completed', data: { stepId: 's1', status: 'success', duration_ms: 1200 } });
  await job({ event: 'step.started', data: { stepId: 's2', name: 'Running tests', phase: 'validation' } });
  await job({ event: 'step.output', data: { stepId: 's2', chunk: 'test a ... ok\n' } });
  result.steps = await until('two steps', (s) => s.steps.length === 2 && s.steps[1].output.includes('test a'));

  // Cut the job stream and, before the page is back (Herald's retry hint is longer than this takes),
  // publish more than the replay log holds: the page's reconnect finds its id evicted and gets a reset.
  await call('POST', `/v1/streams/${cfg.job}/disconnect`);
  await job({ events: Array.from({ length: 10 }, (_, n) => ({ event: 'step.output', data: { stepId: 's2', chunk: `test ${n} ... ok\n` } })) });
  result.reset = await until('a reset', (s) => s.counts.resets >= 1 && s.status === 'open');
  await job({ event: 'step.completed', data: { stepId: 's2', status: 'failure', duration_ms: 3400 } });
  await job({ event: 'stream.complete', data: { status: 'failure' } });
  // The server ends a complete stream; the page reconnects once and gets 204, which ends it for good.
  result.complete = await until('the job to end', (s) => s.status === 'complete' && s.jobComplete);
  await page.screenshot({ path: join(cfg.screenshots, 'live-page-runner-job.png'), fullPage: true });

  // Bad input shows Herald's JSON error on the page, not a silent failure.
  await page.fill('#token', 'not-a-token');
  await page.click('#open');
  result.badToken = await until('an error', (s) => s.status === 'error');
}

let chromium;
try {
  chromium = await launchChromium();
  const page = chromium.context.pages()[0] ?? (await chromium.context.newPage());
  await page.setViewportSize({ width: 1200, height: 900 });
  // Uncaught exceptions in the page's code, and what it logged as errors (Chromium also logs each failed
  // request there, such as the 401 the last step provokes).
  const pageErrors = [];
  const consoleErrors = [];
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  page.on('console', (message) => message.type() === 'error' && consoleErrors.push(message.text()));
  const read = () => page.evaluate(readPage);
  const until = (what, test, timeoutMs = 20000) =>
    waitFor(what, async () => {
      const seen = await read();
      return test(seen) ? seen : null;
    }, timeoutMs).catch(async (error) => {
      error.message += `\npage: ${JSON.stringify(await read())}\nerrors: ${JSON.stringify(pageErrors)}`;
      throw error;
    });
  const result = { pageErrors, consoleErrors };
  if (cfg.mode === 'link') await linkScenario(page, until, result);
  else await tour(page, read, until, result);
  output(result);
} finally {
  await chromium?.close();
}
