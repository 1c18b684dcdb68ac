// npm `eventsource` (4.1.1) in Node against Herald: Bearer auth through its `fetch` option, named events,
// a server-side cut, its own reconnect with Last-Event-ID, and a complete stream's 204 ending it.
// Input (argv[2], JSON): {herald, token, stream}. Output: one JSON line (see common.mjs resumeScenario).
import { EventSource } from 'eventsource';

import { input, output, resumeScenario } from './common.mjs';

const cfg = input();
const received = [];
const requests = [];
const state = { opens: 0, errors: [], unnamed: 0, errorMessages: [] };

const es = new EventSource(`${cfg.herald}/v1/streams/${cfg.stream}`, {
  // The library's documented way to send headers: wrap fetch. Recording here sees every request it
  // makes, including each reconnect and the Last-Event-ID it sends.
  fetch: (url, init) => {
    const record = { lastEventId: init.headers['Last-Event-ID'] ?? null, status: null };
    requests.push(record);
    return fetch(url, {
      ...init,
      headers: { ...init.headers, Authorization: `Bearer ${cfg.token}` },
    }).then((response) => {
      record.status = response.status;
      return response;
    });
  },
});

for (const type of ['tick', 'job:state_change', 'stream.complete', 'reset', 'lagging']) {
  es.addEventListener(type, (event) => received.push({ type, id: event.lastEventId, data: event.data }));
}
es.addEventListener('message', () => state.unnamed++);
es.addEventListener('open', () => state.opens++);
es.addEventListener('error', (event) => {
  state.errors.push(es.readyState);
  state.errorMessages.push(event.message ?? null);
});

const client = {
  received: async () => received.slice(),
  state: async () => ({ readyState: es.readyState, ...structuredClone(state) }),
  requests: async () => structuredClone(requests),
};

try {
  const result = await resumeScenario(cfg, client);
  output({ client: 'eventsource@4.1.1', ...result });
} finally {
  es.close();
}
