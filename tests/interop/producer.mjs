// Interop: the TypeScript client (@durable-streams/client) appends COUNT JSON messages through an
// IdempotentProducer to DS_URL, one flush at a time, while the test kills and restarts `wrangler dev`.
// The producer reports a failed request and moves on, so it gets a fetch that does what an
// application's retry layer would: re-send the same request (same Producer-Id, Producer-Epoch and
// Producer-Seq) on network errors and 5xx until the server answers. Herald must store each batch once.
// Prints "progress <n>" after each flushed message and "done" at the end.
import { DurableStream, IdempotentProducer } from "@durable-streams/client";

const url = process.env.DS_URL;
const count = Number(process.env.COUNT ?? 60);
const headers = { Authorization: `Bearer ${process.env.DS_TOKEN}` };
async function retryingFetch(input, init) {
  let delay = 100;
  for (let attempt = 0; attempt < 600; attempt++) {
    try {
      const response = await fetch(input, init);
      if (response.status < 500) return response;
      await response.arrayBuffer();
    } catch {
      // The server is down (killed and restarting): try again.
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 1000);
  }
  throw new Error("the server never answered");
}

const stream = await DurableStream.create({ url, contentType: "application/json", headers, fetch: retryingFetch });
const producer = new IdempotentProducer(stream, "ts-interop", {
  epoch: 0,
  lingerMs: 0,
  maxInFlight: 1,
  headers,
  fetch: retryingFetch,
  onError: (error) => console.error(`producer error: ${error}`),
});
for (let i = 0; i < count; i++) {
  producer.append(JSON.stringify({ client: "ts", n: i }));
  await producer.flush();
  console.log(`progress ${i + 1}`);
  await new Promise((resolve) => setTimeout(resolve, Number(process.env.PACE_MS ?? 0)));
}
await producer.detach();
console.log("done");
