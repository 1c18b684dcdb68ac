// The live page's stream reader. It reads with fetch instead of EventSource, for three things a page that
// shows a raw stream needs and EventSource hides: comments (Herald's `: heartbeat`), event names it does not
// know in advance (EventSource only dispatches names it has a listener for), and why a connection failed
// (the status and Herald's JSON error). It also sends the token as `Authorization: Bearer` rather than in
// the URL. Parsing and reconnecting follow the WHATWG "server-sent events" section; herald-core's parser is
// the reference and the e2e tests check this page against the worker.

/**
 * A push parser for `text/event-stream`: bytes in, items out. Like herald-core's parser it bounds its
 * memory: a line, or the data of one event, longer than `lineCharsMax` UTF-16 code units is not kept; the
 * event it belongs to is dropped (reported as `{kind: 'dropped'}`), and a long comment is ignored.
 */
export class SseParser {
  /** The default line bound: 1 Mi code units, herald-core's default (1 MiB) for ASCII text. */
  static LINE_CHARS_MAX_DEFAULT = 1 << 20;

  constructor(lineCharsMax = SseParser.LINE_CHARS_MAX_DEFAULT) {
    this.lineCharsMax = Math.max(1, lineCharsMax);
    // "last event ID buffer": survives reconnects, like an EventSource's.
    this.lastEventId = '';
    this.reset();
  }

  /** Forgets a half-read line and event: a new connection starts clean. */
  reset() {
    // TextDecoder drops one leading BOM ("a single U+FEFF BYTE ORDER MARK character ... must be ignored")
    // and replaces invalid UTF-8 with U+FFFD, as the spec's "UTF-8 decode" does.
    this.decoder = new TextDecoder('utf-8');
    this.line = '';
    // The unfinished line went over the bound: only its first character is kept (a comment or not).
    this.lineTooLong = false;
    this.pendingCR = false;
    // A line or the data of the current event went over the bound: the event is dropped.
    this.oversized = false;
    this.data = '';
    this.event = '';
    this.hasId = false;
    this.idBuffer = this.lastEventId;
  }

  /**
   * Feeds a chunk; returns the items it completed: `{kind: 'event', event, data, id, hasId}` (`id` is the
   * last event id, as EventSource reports it; `hasId` says whether this event's own frame had an `id:`),
   * `{kind: 'comment', text}` or `{kind: 'retry', ms}`.
   */
  push(bytes) {
    return this.#text(this.decoder.decode(bytes, { stream: true }));
  }

  #text(text) {
    const items = [];
    let start = 0;
    // "Lines must be separated by either a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF) character pair,
    // a single U+000A LINE FEED (LF) character, or a single U+000D CARRIAGE RETURN (CR) character."
    // A CR at the end of a chunk ends the line; an LF opening the next chunk belongs to it.
    if (this.pendingCR && text.length > 0) {
      if (text.charCodeAt(0) === 10) start = 1;
      this.pendingCR = false;
    }
    for (let i = start; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code !== 10 && code !== 13) continue;
      const line = this.line + text.slice(start, i);
      this.line = '';
      if (this.lineTooLong || line.length > this.lineCharsMax) {
        this.lineTooLong = false;
        if (line[0] !== ':') this.oversized = true;
      } else {
        this.#field(line, items);
      }
      if (code === 13) {
        if (i + 1 === text.length) this.pendingCR = true;
        else if (text.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    this.line += text.slice(start);
    if (this.line.length > this.lineCharsMax) {
      this.line = this.line[0];
      this.lineTooLong = true;
    }
    return items;
  }

  #field(line, items) {
    // "If the line is empty (a blank line): Dispatch the event."
    if (line === '') return this.#dispatch(items);
    // "If the line starts with a U+003A COLON character (:): Ignore the line." (The page shows it.)
    if (line[0] === ':') {
      items.push({ kind: 'comment', text: line.slice(1).replace(/^ /, '') });
      return;
    }
    // "If the line contains a U+003A COLON character: collect the characters on the line before the first
    // colon, and let field be that string; ... If value starts with a U+0020 SPACE character, remove it."
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    switch (field) {
      case 'event':
        this.event = value;
        break;
      case 'data':
        if (this.data.length + value.length >= this.lineCharsMax) this.oversized = true;
        else this.data += value + '\n';
        break;
      case 'id':
        // "If the field value does not contain U+0000 NULL, then set the last event ID buffer."
        if (!value.includes('\0')) {
          this.idBuffer = value;
          this.hasId = true;
        }
        break;
      case 'retry':
        // "If the field value consists of only ASCII digits, then interpret the field value as an integer
        // in base ten, and set the event stream's reconnection time to that integer."
        if (/^[0-9]+$/.test(value)) items.push({ kind: 'retry', ms: Number(value) });
        break;
      default:
        // "Otherwise: The field is ignored."
        break;
    }
  }

  #dispatch(items) {
    // "1. Set the last event ID string of the event source to the value of the last event ID buffer."
    this.lastEventId = this.idBuffer;
    // "2. If the data buffer is an empty string, set the data buffer and the event type buffer to the empty
    // string and return."
    const hasId = this.hasId;
    this.hasId = false;
    if (this.oversized) {
      items.push({ kind: 'dropped', reason: `a line or the data was over ${this.lineCharsMax} characters` });
      this.oversized = false;
      this.data = '';
      this.event = '';
      return;
    }
    if (this.data === '') {
      this.event = '';
      return;
    }
    // "3. If the data buffer's last character is a U+000A LINE FEED (LF) character, then remove the last
    // character from the data buffer."
    const data = this.data.slice(0, -1);
    items.push({ kind: 'event', event: this.event || 'message', data, id: this.lastEventId, hasId });
    this.data = '';
    this.event = '';
  }
}

/** Waits `ms`, or less if `signal` aborts; leaves no listener behind either way. */
export const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

/** What a failed request said: Herald's `{error, message}` when it sent one. */
async function describe(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body.error) return `${response.status} ${body.error}: ${body.message}`;
  } catch {
    // Not JSON: show the text.
  }
  return `${response.status} ${text.slice(0, 200)}`;
}

/**
 * One subscription that reconnects like EventSource: after the server ends the stream or the network drops
 * it, it waits the `retry:` time and reconnects with `Last-Event-ID`. It stops for good on 204 (Herald's
 * "this stream is complete and you have seen it all") and on any other 4xx (a retry would get the same
 * answer); 5xx and network errors are retried.
 *
 * `on` receives `('state', {state, reason, resumedFrom})` and `('item', item)`: `reason` says why a
 * connection ended or failed; `resumedFrom` is set on `open` after a reconnect (the Last-Event-ID sent).
 */
export class Subscription {
  constructor(url, token, on) {
    this.url = url;
    this.token = token;
    this.on = on;
    this.parser = new SseParser();
    this.retryMs = 3000;
    this.opened = 0;
    this.abort = new AbortController();
  }

  start() {
    this.#run();
    return this;
  }

  stop() {
    this.abort.abort();
  }

  get stopped() {
    return this.abort.signal.aborted;
  }

  async #run() {
    const signal = this.abort.signal;
    while (!this.stopped) {
      const resumeFrom = this.parser.lastEventId;
      this.on('state', { state: this.opened ? 'reconnecting' : 'connecting' });
      const headers = { authorization: `Bearer ${this.token}`, accept: 'text/event-stream' };
      if (resumeFrom) headers['last-event-id'] = resumeFrom;
      let response;
      try {
        response = await fetch(this.url, { headers, signal, cache: 'no-store' });
      } catch (error) {
        if (this.stopped) return;
        this.on('state', { state: 'reconnecting', reason: `network error: ${error.message}` });
        await sleep(this.retryMs, signal);
        continue;
      }
      if (response.status === 204) {
        this.on('state', { state: 'complete', reason: 'the stream is complete (204)' });
        return;
      }
      const type = response.headers.get('content-type') || '';
      if (!response.ok || !type.startsWith('text/event-stream')) {
        const reason = await describe(response);
        if (response.status >= 500) {
          this.on('state', { state: 'reconnecting', reason });
          await sleep(this.retryMs, signal);
          continue;
        }
        this.on('state', { state: 'error', reason });
        return;
      }
      this.opened += 1;
      this.parser.reset();
      this.on('state', { state: 'open', resumedFrom: this.opened > 1 ? resumeFrom : undefined });
      try {
        const reader = response.body.getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const item of this.parser.push(value)) {
            if (item.kind === 'retry') this.retryMs = item.ms;
            this.on('item', item);
          }
        }
      } catch (error) {
        if (this.stopped) return;
        this.on('state', { state: 'reconnecting', reason: `read error: ${error.message}` });
        await sleep(this.retryMs, signal);
        continue;
      }
      if (this.stopped) return;
      this.on('state', { state: 'reconnecting', reason: 'the server ended the stream' });
      await sleep(this.retryMs, signal);
    }
  }
}
