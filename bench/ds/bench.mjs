// Durable Streams benchmark (scripts/bench-ds.sh; not part of scripts/test.sh): append throughput and
// catch-up read throughput of Herald's /ds/ routes (wrangler dev, HERALD_URL, Bearer DS_TOKEN) and of the
// protocol's Node reference server (@durable-streams/server, file-backed, started here on this machine),
// in one run, printed with Herald's ratio to the reference.
//
// Appends: APPENDS requests of APPEND_BYTES each, CONCURRENCY in flight, spread over as many streams
// (each stream's appends in order). Catch-up: one stream of READ_MB MiB in 64 KiB appends, read from -1
// to the tail READS times, following Stream-Next-Offset.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DurableStreamTestServer } from "@durable-streams/server";

const herald = process.env.HERALD_URL;
const token = process.env.DS_TOKEN;
const appends = Number(process.env.APPENDS ?? 2000);
const appendBytes = Number(process.env.APPEND_BYTES ?? 256);
const concurrency = Number(process.env.CONCURRENCY ?? 16);
const readMb = Number(process.env.READ_MB ?? 16);
const reads = Number(process.env.READS ?? 5);
if (!herald || !token) throw new Error("HERALD_URL and DS_TOKEN are required (see scripts/bench-ds.sh)");

const run = `${Date.now()}`;

async function must(response, what) {
  if (!response.ok) throw new Error(`${what}: ${response.status} ${await response.text()}`);
  return response;
}

async function appendPhase(base, headers) {
  const payload = "x".repeat(appendBytes);
  const streams = Array.from({ length: concurrency }, (_, i) => `${base}/bench-append-${run}-${i}`);
  for (const url of streams) {
    await must(await fetch(url, { method: "PUT", headers: { ...headers, "content-type": "text/plain" } }), "create");
  }
  const perStream = Math.ceil(appends / concurrency);
  const started = performance.now();
  await Promise.all(
    streams.map(async (url) => {
      for (let i = 0; i < perStream; i++) {
        const r = await fetch(url, { method: "POST", headers: { ...headers, "content-type": "text/plain" }, body: payload });
        await must(r, "append");
        await r.arrayBuffer();
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const total = perStream * concurrency;
  return { perSecond: total / seconds, mbPerSecond: (total * appendBytes) / seconds / 1048576 };
}

async function readPhase(base, headers) {
  const url = `${base}/bench-read-${run}`;
  await must(await fetch(url, { method: "PUT", headers: { ...headers, "content-type": "application/octet-stream" } }), "create");
  const chunk = new Uint8Array(65536).map((_, i) => i % 251);
  const chunks = Math.round((readMb * 1048576) / chunk.length);
  for (let i = 0; i < chunks; i++) {
    const r = await fetch(url, { method: "POST", headers: { ...headers, "content-type": "application/octet-stream" }, body: chunk });
    await must(r, "fill");
    await r.arrayBuffer();
  }
  const expected = chunks * chunk.length;
  const started = performance.now();
  for (let round = 0; round < reads; round++) {
    let offset = "-1";
    let bytes = 0;
    for (;;) {
      const r = await must(await fetch(`${url}?offset=${encodeURIComponent(offset)}`, { headers }), "read");
      bytes += (await r.arrayBuffer()).byteLength;
      offset = r.headers.get("stream-next-offset");
      if (r.headers.get("stream-up-to-date") === "true") break;
    }
    if (bytes !== expected) throw new Error(`read ${bytes} bytes, expected ${expected}`);
  }
  const seconds = (performance.now() - started) / 1000;
  return { mbPerSecond: (expected * reads) / seconds / 1048576 };
}

async function measure(name, base, headers) {
  const append = await appendPhase(base, headers);
  const read = await readPhase(base, headers);
  console.error(`${name}: ${append.perSecond.toFixed(0)} appends/s, catch-up ${read.mbPerSecond.toFixed(1)} MiB/s`);
  return { append, read };
}

const dataDir = mkdtempSync(join(tmpdir(), "ds-reference-"));
const reference = new DurableStreamTestServer({ port: 0, host: "127.0.0.1", dataDir });
const referenceUrl = await reference.start();
try {
  const ours = await measure("herald", `${herald}/ds`, { authorization: `Bearer ${token}` });
  const theirs = await measure("reference", `${referenceUrl}/v1/stream`, {});
  const row = (what, a, b, unit) =>
    `| ${what} | ${a.toFixed(1)} ${unit} | ${b.toFixed(1)} ${unit} | ${(a / b).toFixed(2)} |`;
  console.log(`Durable Streams: Herald (wrangler dev) vs @durable-streams/server (file-backed), this machine`);
  console.log(`appends: ${appends} x ${appendBytes} B, ${concurrency} in flight; catch-up: ${readMb} MiB read ${reads} times`);
  console.log(`| measure | Herald | reference | ratio (Herald / reference) |`);
  console.log(`|---|---|---|---|`);
  console.log(row("append throughput", ours.append.perSecond, theirs.append.perSecond, "appends/s"));
  console.log(row("catch-up read throughput", ours.read.mbPerSecond, theirs.read.mbPerSecond, "MiB/s"));
} finally {
  await reference.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
