// Interop: the TypeScript client (@durable-streams/client) appends COUNT JSON messages through an
// IdempotentProducer to DS_URL, one flush at a time, while the test kills and restarts `wrangler dev`.
// The client's fetch retries network errors and 5xx with backoff, re-sending the same
// (Producer-Id, Producer-Epoch, Producer-Seq): Herald must store each batch once.
// Prints "progress <n>" after each flushed message and "done" at the end.
import { DurableStream, IdempotentProducer } from "@durable-streams/client";

const url = process.env.DS_URL;
const count = Number(process.env.COUNT ?? 60);
const headers = { Authorization: `Bearer ${process.env.DS_TOKEN}` };
const stream = await DurableStream.create({ url, contentType: "application/json", headers });
const producer = new IdempotentProducer(stream, "ts-interop", {
  epoch: 0,
  lingerMs: 0,
  maxInFlight: 1,
  headers,
  onError: (error) => console.error(`producer error: ${error}`),
});
for (let i = 0; i < count; i++) {
  producer.append(JSON.stringify({ client: "ts", n: i }));
  await producer.flush();
  console.log(`progress ${i + 1}`);
}
await producer.detach();
console.log("done");
