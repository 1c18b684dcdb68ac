// The live page's stream reader (edge-worker/public/sse.js), run under Node's test runner: the parser
// against whole and split input and its line bound, and the retry wait. The e2e tests drive the same code
// in headless Chromium against the worker; these cover what a live stream rarely produces.
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { test } from 'node:test';

import { SseParser, sleep } from '../../edge-worker/public/sse.js';

const bytes = (text) => new TextEncoder().encode(text);

function parseAll(chunks, parser = new SseParser()) {
  return chunks.flatMap((chunk) => parser.push(chunk));
}

const STREAM = '\uFEFFretry: 250\r\n: hi\r\nid: 1\revent: job\ndata: {"n":1}\r\ndata: two\n\nid: 2\r\ndata: é€😀\r\r';

test('every split of the stream gives the items of the whole', () => {
  const whole = bytes(STREAM);
  const expected = parseAll([whole]);
  assert.deepEqual(expected, [
    { kind: 'retry', ms: 250 },
    { kind: 'comment', text: 'hi' },
    { kind: 'event', event: 'job', data: '{"n":1}\ntwo', id: '1', hasId: true },
    { kind: 'event', event: 'message', data: 'é€😀', id: '2', hasId: true },
  ]);
  for (let at = 0; at <= whole.length; at++) {
    for (let second = at; second <= whole.length; second += 7) {
      const chunks = [whole.slice(0, at), whole.slice(at, second), whole.slice(second)];
      assert.deepEqual(parseAll(chunks), expected, `split at ${at} and ${second}`);
    }
  }
});

test('a line over the bound drops its event, not the next one', () => {
  const parser = new SseParser(16);
  const long = 'x'.repeat(40);
  const items = parseAll([bytes(`data: ${long.slice(0, 20)}`), bytes(`${long.slice(20)}\n\ndata: ok\n\n`)], parser);
  assert.deepEqual(items, [
    { kind: 'dropped', reason: 'a line or the data was over 16 characters' },
    { kind: 'event', event: 'message', data: 'ok', id: '', hasId: false },
  ]);
  assert.ok(parser.line.length <= 16, 'the unfinished line is not kept whole');
});

test('data over the bound across lines drops the event; a long comment is ignored', () => {
  const parser = new SseParser(16);
  const items = parseAll([bytes(`data: 0123456789\ndata: 0123456789\n\n: ${'c'.repeat(40)}\ndata: ok\n\n`)], parser);
  assert.deepEqual(items, [
    { kind: 'dropped', reason: 'a line or the data was over 16 characters' },
    { kind: 'event', event: 'message', data: 'ok', id: '', hasId: false },
  ]);
});

test('sleep leaves no abort listener behind, whether it times out or is aborted', async () => {
  const abort = new AbortController();
  for (let i = 0; i < 5; i++) await sleep(1, abort.signal);
  assert.equal(getEventListeners(abort.signal, 'abort').length, 0);
  const waiting = sleep(60_000, abort.signal);
  assert.equal(getEventListeners(abort.signal, 'abort').length, 1);
  abort.abort();
  await waiting;
  assert.equal(getEventListeners(abort.signal, 'abort').length, 0);
});
