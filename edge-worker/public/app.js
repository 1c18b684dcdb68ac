// The live page: connect to one stream, show every frame, and draw SQLMesh plan trackers and runner-job steps.
// State lives in the DOM's data-* attributes as well as on screen, so a test can read what a person sees.

import { Subscription } from './sse.js';

const $ = (id) => document.getElementById(id);
const LOG_ROWS_MAX = 500;

/** SQLMesh's trackers and their stages, in the order SQLMesh runs them. */
const TRACKERS = [
  { event: 'plan-overview', name: 'overview', stages: ['validation', 'changes', 'backfills'] },
  { event: 'plan-apply', name: 'apply', stages: ['creation', 'restate', 'backfill', 'promote'] },
  { event: 'plan-cancel', name: 'cancel', stages: ['cancel'] },
];

/** Event names each family uses for heartbeats (no id: they never move the cursor). */
const HEARTBEAT_EVENTS = new Set(['ping', 'heartbeat']);

const page = {
  subscription: null,
  family: 'generic',
  counts: { events: 0, heartbeats: 0, reconnects: 0, resets: 0 },
  plan: {},
  steps: new Map(),
  complete: false,
};

// ---- connecting -------------------------------------------------------------------------------------------

/** The stream URL for the form's family, connection id and filters. */
function streamUrl(family, connection, types, categories) {
  const query = new URLSearchParams();
  let path;
  switch (family) {
    case 'sqlmesh':
      path = '/api/events';
      break;
    case 'sluice':
      path = '/api/events/stream';
      query.set('connectionId', connection);
      break;
    case 'runner':
      path = `/runner-jobs/${encodeURIComponent(connection)}/events/stream`;
      break;
    default:
      path = `/v1/streams/${encodeURIComponent(connection)}`;
  }
  if (types) query.set('types', types);
  if (categories) query.set('categories', categories);
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

function connect(event) {
  event.preventDefault();
  disconnect();
  const token = $('token').value.trim();
  sessionStorage.setItem('herald-token', token);
  page.family = $('family').value;
  page.counts = { events: 0, heartbeats: 0, reconnects: 0, resets: 0 };
  page.plan = {};
  page.steps = new Map();
  page.complete = false;
  $('log').tBodies[0].replaceChildren();
  $('last-heartbeat').textContent = '';
  const url = streamUrl(page.family, $('connection').value.trim(), $('types').value.trim(),
    $('categories').value.trim());
  $('stream-url').textContent = url;
  $('plan').hidden = page.family !== 'sqlmesh';
  $('job').hidden = page.family !== 'runner';
  render();
  page.subscription = new Subscription(url, token, (what, value) =>
    what === 'state' ? onState(value) : onItem(value)).start();
  $('close').disabled = false;
}

function disconnect() {
  if (!page.subscription) return;
  page.subscription.stop();
  page.subscription = null;
  setStatus('stopped');
  $('close').disabled = true;
}

function setStatus(status) {
  $('status').dataset.status = status;
  $('status').textContent = status;
}

function onState({ state, reason, resumedFrom }) {
  setStatus(state);
  const problem = $('problem');
  problem.hidden = state !== 'error';
  if (state === 'error') problem.textContent = reason;
  if (state === 'open' && resumedFrom !== undefined) {
    page.counts.reconnects += 1;
    logRow('reconnect', '', '', `reconnected with Last-Event-ID ${resumedFrom || '(none)'}`);
  } else if (state === 'open') {
    logRow('open', '', '', 'connected');
  } else if (reason) {
    logRow(state === 'reconnecting' ? 'reconnect' : state, '', '', reason);
  }
  if (state === 'error' || state === 'complete') {
    page.subscription = null;
    $('close').disabled = true;
  }
  renderCounters();
}

// ---- frames -----------------------------------------------------------------------------------------------

function onItem(item) {
  if (item.kind === 'retry') {
    logRow('control', '', 'retry:', `reconnect after ${item.ms} ms`);
  } else if (item.kind === 'dropped') {
    logRow('control', '', 'dropped', `an event was dropped: ${item.reason}`);
  } else if (item.kind === 'comment') {
    if (item.text === 'heartbeat') heartbeat('comment');
    else logRow('comment', '', ':', item.text);
  } else if (HEARTBEAT_EVENTS.has(item.event) && !item.hasId) {
    heartbeat(item.event, item.data);
  } else {
    onEvent(item);
  }
  renderCounters();
}

function heartbeat(how, data = '') {
  page.counts.heartbeats += 1;
  $('last-heartbeat').textContent = `last ${clock(new Date())} (${how})`;
  logRow('heartbeat', '', how === 'comment' ? ':' : how, data || 'heartbeat');
}

function onEvent({ event, data, id, hasId }) {
  // Control events (reset, lagging) and the tracker snapshot a fresh SQLMesh client gets carry no id: they
  // are not in the log and do not move the cursor.
  const json = parse(data);
  if (event === 'reset') {
    page.counts.resets += 1;
    // `id` is still the last id the page saw: with the log's oldest id it names what is gone.
    const gone = json?.reason === 'evicted' && id ? ` (lost: the events after ${id} and before ${json.oldest})` : '';
    logRow('reset', '', event, data + gone);
    for (const [name, tracker] of Object.entries(json?.snapshot ?? {})) page.plan[name] = tracker;
    renderPlan();
    return;
  }
  if (event === 'lagging') {
    logRow('lagging', '', event, data);
    return;
  }
  page.counts.events += 1;
  if (event === 'stream.complete') {
    page.complete = true;
    logRow('complete', hasId ? id : '', event, data);
    renderSteps();
    return;
  }
  logRow('event', hasId ? id : '', event, data);
  if (TRACKERS.some((t) => t.event === event) && json) {
    page.plan[event] = json;
    renderPlan();
  } else if (event.startsWith('step.') && json?.stepId !== undefined) {
    step(event, json);
  }
}

function step(event, json) {
  const id = String(json.stepId);
  const step = page.steps.get(id) ?? { name: id, phase: '', status: 'running', output: '', progress: '' };
  page.steps.set(id, step);
  if (event === 'step.started') {
    Object.assign(step, { name: json.name ?? id, phase: json.phase ?? '', status: 'running' });
  } else if (event === 'step.output') {
    step.output += typeof json.chunk === 'string' ? json.chunk : JSON.stringify(json.chunk);
  } else if (event === 'step.progress') {
    step.progress = JSON.stringify(json);
  } else if (event === 'step.completed') {
    Object.assign(step, { status: json.status ?? 'completed', durationMs: json.duration_ms });
  }
  renderSteps();
}

function parse(data) {
  try {
    return JSON.parse(data);
  } catch {
    return null;
  }
}

// ---- drawing ----------------------------------------------------------------------------------------------

const pad = (n, width = 2) => String(n).padStart(width, '0');
const clock = (date) =>
  `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;

function duration(ms) {
  if (ms === undefined || ms === null) return '';
  return ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60000)} m ${Math.round((ms % 60000) / 1000)} s`;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    // The page's Content-Security-Policy (_headers) forbids style attributes; CSSOM properties are allowed.
    if (name === 'style') Object.assign(node.style, value);
    else if (name.startsWith('data-') || name === 'class' || name === 'title') node.setAttribute(name, value);
    else node[name] = value;
  }
  node.append(...children);
  return node;
}

function logRow(kind, id, event, data) {
  const body = $('log').tBodies[0];
  const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  const text = String(data ?? '');
  body.append(element('tr', { 'data-kind': kind },
    element('td', {}, clock(new Date())), element('td', {}, kind), element('td', {}, id),
    element('td', {}, event), element('td', { title: text }, text.length > 240 ? `${text.slice(0, 240)}…` : text)));
  while (body.rows.length > LOG_ROWS_MAX) body.rows[0].remove();
  if (atBottom) window.scrollTo(0, document.body.scrollHeight);
}

function renderCounters() {
  for (const [name, value] of Object.entries(page.counts)) $(`count-${name}`).textContent = value;
  const lastId = page.subscription?.parser.lastEventId;
  if (lastId !== undefined) $('last-id').textContent = lastId || 'none';
}

function planRunning() {
  const overview = page.plan['plan-overview'];
  const apply = page.plan['plan-apply'];
  return [overview, apply].some((tracker) => tracker?.meta?.status === 'init');
}

/** One stage row of a tracker: its status, a bar on the tracker's time span, duration and details. */
function renderStage(tracker, name, begin, span, now) {
  const stage = tracker[name];
  const status = stage?.meta?.status ?? 'pending';
  const stageMeta = stage?.meta ?? {};
  const left = stage ? ((stageMeta.start - begin) / span) * 100 : 0;
  const width = stage ? (((stageMeta.end ?? now) - stageMeta.start) / span) * 100 : 0;
  const { meta: _, ...details } = stage ?? {};
  const detailText = Object.keys(details).length ? JSON.stringify(details) : '';
  return element('div', { class: 'stage', 'data-stage': name, 'data-status': status },
    element('span', {}, name),
    element('span', { class: 'track' }, element('span', { class: 'bar', style: { left: `${left}%`, width: `${width}%` } })),
    element('span', { class: 'badge', 'data-status': status }, status === 'init' ? 'running' : status),
    element('span', { class: 'duration' }, stage ? duration(stageMeta.duration ?? now - stageMeta.start) + (stageMeta.done ? '' : '…') : ''),
    element('span', { class: 'details', title: detailText }, detailText.length > 200 ? `${detailText.slice(0, 200)}…` : detailText));
}

/** One tracker (`TRACKERS` entry `spec`): its heading, then a row per stage. */
function renderTracker(spec, tracker, now) {
  const meta = tracker.meta ?? {};
  const begin = meta.start ?? now;
  const span = Math.max((meta.end ?? now) - begin, 1);
  const rows = spec.stages.map((name) => renderStage(tracker, name, begin, span, now));
  const about = [tracker.environment && `environment ${tracker.environment}`,
    meta.done ? `took ${duration(meta.duration)}` : `running for ${duration(now - begin)}`].filter(Boolean).join(' · ');
  return element('div', { class: 'tracker', 'data-tracker': spec.name, 'data-status': meta.status ?? 'init' },
    element('h3', {}, spec.name, element('span', { class: 'badge', 'data-status': meta.status ?? 'init' },
      meta.status === 'init' ? 'running' : meta.status ?? ''), element('small', {}, about)), ...rows);
}

function renderPlan() {
  const now = Date.now();
  // A tracker that never started comes as `{}` in a snapshot: nothing to draw.
  $('trackers').replaceChildren(...TRACKERS.filter((t) => page.plan[t.event]?.meta)
    .map((t) => renderTracker(t, page.plan[t.event], now)));
  const running = planRunning();
  const cancelling = page.plan['plan-cancel']?.cancel?.meta?.status === 'init';
  const cancelled = page.plan['plan-cancel']?.cancel?.meta?.status === 'success';
  const summary = running ? (cancelling ? 'cancelling' : 'running')
    : cancelled ? 'cancelled'
    : page.plan['plan-apply']?.meta?.status ?? page.plan['plan-overview']?.meta?.status ?? 'no plan yet';
  $('plan-summary').textContent = summary;
  $('plan').dataset.plan = summary;
  $('cancel-plan').disabled = !running || cancelling;
}

function renderSteps() {
  const steps = [...page.steps.entries()].map(([id, step]) =>
    element('li', { 'data-step': id, 'data-status': step.status },
      element('b', {}, step.name), ' ', element('small', {}, step.phase), ' ',
      element('span', { class: 'badge', 'data-status': step.status }, step.status), ' ',
      element('small', { class: 'duration' }, duration(step.durationMs)),
      step.progress ? element('div', {}, element('small', {}, step.progress)) : '',
      step.output ? element('pre', {}, step.output) : ''));
  $('steps').replaceChildren(...steps);
  const done = [...page.steps.values()].filter((s) => s.status !== 'running').length;
  $('job-summary').textContent = `${done}/${page.steps.size} steps done${page.complete ? ' · job complete' : ''}`;
  $('job').dataset.complete = page.complete;
}

function render() {
  renderCounters();
  renderPlan();
  renderSteps();
}

// ---- stream directory -------------------------------------------------------------------------------------

/** How often the page lists the tenant's streams again (`GET /v1/streams`). */
const DIRECTORY_REFRESH_MS = 3000;

/** Lists the tenant's streams with the form's token; a failure is shown in place of the list. */
async function refreshDirectory() {
  const token = $('token').value.trim();
  if (!token) return;
  let problem;
  try {
    const response = await fetch('/v1/streams?limit=100', {
      headers: { authorization: `Bearer ${token}` },
      cache: 'no-store',
    });
    if (response.ok) {
      renderDirectory(await response.json());
      return;
    }
    problem = `${response.status} ${await response.text()}`;
  } catch (error) {
    problem = `network error: ${error.message}`;
  }
  $('directory-note').textContent = `cannot list streams: ${problem}`;
}

/** One row per stream, newest event first: a button that connects to it, then what its hub reported. */
function renderDirectory({ streams }) {
  $('streams').replaceChildren(...streams.map((stream) => {
    const about = [
      stream.family ?? 'not subscribed yet',
      `${stream.subscribers} subscriber${stream.subscribers === 1 ? '' : 's'}`,
      stream.lastEventId ? `last ${stream.lastEventId}` : 'no events',
      stream.lastEventMs ? `at ${clock(new Date(stream.lastEventMs))}` : '',
      stream.complete ? 'complete' : '',
    ].filter(Boolean).join(' · ');
    return element('li', { 'data-connection': stream.connectionId, 'data-family': stream.family ?? '' },
      element('button', { type: 'button', class: 'pick' }, stream.connectionId), ' ', element('small', {}, about));
  }));
  $('directory-note').textContent = streams.length
    ? `${streams.length} stream${streams.length === 1 ? '' : 's'}, listed ${clock(new Date())}`
    : 'no streams yet';
}

/** Connects to a listed stream with the family it was last subscribed through (generic if none). */
function pickStream(event) {
  const row = event.target.closest('li[data-connection]');
  if (!row || !event.target.matches('button')) return;
  const family = { 'runner-job': 'runner', '': 'generic' }[row.dataset.family] ?? row.dataset.family;
  $('family').value = family;
  familyChanged();
  if (family !== 'sqlmesh') $('connection').value = row.dataset.connection;
  $('connect').requestSubmit();
}

// ---- actions ----------------------------------------------------------------------------------------------

async function cancelPlan() {
  $('cancel-plan').disabled = true;
  let problem;
  try {
    const response = await fetch('/api/plan/cancel', {
      method: 'POST',
      headers: { authorization: `Bearer ${$('token').value.trim()}` },
    });
    if (!response.ok) problem = `${response.status} ${await response.text()}`;
  } catch (error) {
    problem = `network error: ${error.message}`;
  }
  if (problem) {
    $('problem').hidden = false;
    $('problem').textContent = `cancel: ${problem}`;
    renderPlan();
  }
}

/** `#token=…&family=…&connection=…` fills the form (scripts/dev.sh prints such a link); a fragment never
 * reaches a server, and it is cleared from the address bar at once. */
function fromFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get('token') ?? sessionStorage.getItem('herald-token');
  if (token) $('token').value = token;
  if (fragment.get('family')) $('family').value = fragment.get('family');
  if (fragment.get('connection')) $('connection').value = fragment.get('connection');
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
}

function familyChanged() {
  const sqlmesh = $('family').value === 'sqlmesh';
  $('connection').disabled = sqlmesh;
  if (sqlmesh) $('connection').value = 'default';
}

$('connect').addEventListener('submit', connect);
$('close').addEventListener('click', disconnect);
$('cancel-plan').addEventListener('click', cancelPlan);
$('family').addEventListener('change', familyChanged);
$('streams').addEventListener('click', pickStream);
$('token').addEventListener('change', refreshDirectory);
fromFragment();
familyChanged();
render();
refreshDirectory();
setInterval(refreshDirectory, DIRECTORY_REFRESH_MS);
// Running stages and trackers show a live duration.
setInterval(() => planRunning() && renderPlan(), 500);
