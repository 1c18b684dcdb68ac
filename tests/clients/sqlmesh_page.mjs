// Headless Chromium on a page that talks to Herald the way SQLMesh's web client does (web/client:
// `new EventSource(url, {withCredentials: true})`, plain `fetch` with `credentials: "include"` and a
// JSON body to /api/plan and /api/plan/cancel, `GET /api/meta` on mount), after the page set a session
// cookie with POST /v1/sessions. The page is http://127.0.0.1:<pagePort>: another origin than Herald's
// http://127.0.0.1:<port>, on the same site, so the default SameSite=Lax cookie goes with its requests.
// A second page, on an origin Herald does not list, tries the same POST with the same cookie.
// The script also plays the plan runner (Bearer token, /api/plan/stages). It checks nothing itself:
// it prints what the page saw as one JSON line, and the Rust test asserts.
// Input (argv[2], JSON): {herald, token, pagePort, otherPort}.
import { createServer } from 'node:http';

import { input, launchChromium, output, sleep, waitFor } from './common.mjs';

const cfg = input();

// The page's code: SQLMesh's client paths, with Herald's absolute URL in front (the UI on another origin).
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>SQLMesh-style client</title>
<script>
window.seen = { events: [], pings: 0, opens: 0, errors: 0, answers: [] };
async function api(herald, method, path, body) {
  // SQLMesh's fetchAPI: only Content-Type, and the browser's cookies.
  const init = { method, credentials: "include", headers: { "Content-Type": "application/json" } };
  if (body !== undefined) init.body = JSON.stringify(body);
  try {
    const response = await fetch(herald + path, init);
    const text = await response.text();
    const answer = { method, path, status: response.status, body: text };
    window.seen.answers.push(answer);
    return answer;
  } catch (error) {
    const answer = { method, path, status: 0, error: String(error) };
    window.seen.answers.push(answer);
    return answer;
  }
}
window.api = api;
// What a forging page can send without a preflight: a "simple" cross-origin POST (text/plain), which
// the browser sends with the cookie and only hides the answer from the page.
window.forge = async (herald, path, body) => {
  try {
    await fetch(herald + path, {
      method: "POST", credentials: "include", mode: "no-cors",
      headers: { "Content-Type": "text/plain" }, body: JSON.stringify(body),
    });
    return "sent";
  } catch (error) {
    return String(error);
  }
};
window.startSession = async (herald, token) => {
  // The page's backend would do this; here the page holds a token for the test.
  const response = await fetch(herald + "/v1/sessions", {
    method: "POST", credentials: "include",
    headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" }, body: "{}",
  });
  return { status: response.status, body: await response.json(), cookieVisible: document.cookie };
};
window.connect = (herald) => {
  // SQLMesh's channels.ts: one EventSource with credentials, listeners per topic.
  const es = new EventSource(herald + "/api/events", { withCredentials: true });
  window.es = es;
  for (const topic of ["plan-overview", "plan-apply", "plan-cancel"]) {
    es.addEventListener(topic, (e) => window.seen.events.push({ topic, data: e.data }));
  }
  es.addEventListener("ping", () => window.seen.pings++);
  es.addEventListener("open", () => window.seen.opens++);
  es.addEventListener("error", () => window.seen.errors++);
};
</script>
<p>SQLMesh-style client</p>
`;

function serve(port) {
  const server = createServer((request, response) => {
    response.writeHead(request.url === '/' ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
    response.end(request.url === '/' ? PAGE : '');
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

async function runner(command) {
  const response = await fetch(cfg.herald + '/api/plan/stages', {
    method: 'POST',
    headers: { authorization: `Bearer ${cfg.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(command),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`runner ${JSON.stringify(command)}: ${response.status} ${text}`);
  return JSON.parse(text);
}

async function planRequest() {
  const response = await fetch(cfg.herald + '/api/plan/request', {
    headers: { authorization: `Bearer ${cfg.token}` },
  });
  return response.json();
}

const servers = [await serve(cfg.pagePort), await serve(cfg.otherPort)];
let chromium;
try {
  chromium = await launchChromium();
  const { context } = chromium;
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  await page.goto(`http://127.0.0.1:${cfg.pagePort}/`);
  const session = await page.evaluate(([h, t]) => window.startSession(h, t), [cfg.herald, cfg.token]);
  const cookies = (await context.cookies(cfg.herald)).map((c) => ({
    name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure, path: c.path,
  }));

  await page.evaluate((h) => window.connect(h), cfg.herald);
  await waitFor('the EventSource to open', () => page.evaluate(() => window.seen.opens >= 1));
  // On mount, SQLMesh's UI asks /api/meta.
  const metaBefore = await page.evaluate((h) => window.api(h, 'GET', '/api/meta'), cfg.herald);
  // The user plans with a category choice; SQLMesh's UI POSTs /api/plan.
  const plan = await page.evaluate(
    (h) => window.api(h, 'POST', '/api/plan', {
      environment: 'dev',
      plan_options: { skip_tests: true, include_unmodified: false },
      categories: { 'sushi.orders': 1, 'sushi.items': 2 },
    }),
    cfg.herald,
  );
  const opened = await planRequest();
  // The runner drives the overview.
  await runner({ op: 'start', stage: 'validation' });
  await runner({ op: 'stop', stage: 'validation', success: true });
  await runner({ op: 'start', stage: 'changes', details: { added: [{ name: 'sushi.orders', view_name: 'sushi.orders' }] } });
  await waitFor('the changes stage on the page', () =>
    page.evaluate(() => window.seen.events.some((e) => e.topic === 'plan-overview' && e.data.includes('"changes"'))),
  );
  const metaDuring = await page.evaluate((h) => window.api(h, 'GET', '/api/meta'), cfg.herald);
  // The user cancels; the runner sees it and stops its stage.
  const cancel = await page.evaluate((h) => window.api(h, 'POST', '/api/plan/cancel'), cfg.herald);
  await runner({ op: 'stop', stage: 'changes', success: false });
  await waitFor('the cancel to complete on the page', () =>
    page.evaluate(() =>
      window.seen.events.some((e) => e.topic === 'plan-cancel' && JSON.parse(e.data).cancel?.meta?.status === 'success'),
    ),
  );
  // A few seconds more: pings keep coming and the connection stays up.
  await sleep(2500);

  // A page on an origin Herald does not list, same site, so the browser sends the same cookie.
  const other = await context.newPage();
  await other.goto(`http://127.0.0.1:${cfg.otherPort}/`);
  const forged = await other.evaluate((h) => window.forge(h, '/api/plan', { environment: 'evil' }), cfg.herald);
  await sleep(300);
  const afterForgery = await planRequest();

  output({
    session,
    cookies,
    metaBefore,
    plan,
    opened,
    metaDuring,
    cancel,
    forged,
    afterForgery,
    seen: await page.evaluate(() => ({ ...window.seen, readyState: window.es.readyState })),
    pageErrors,
  });
} finally {
  await chromium?.close();
  for (const server of servers) server.close();
}
