// A local proxy for the Durable Streams conformance suite, which sends no credentials: it adds
// `Authorization: Bearer $DS_TOKEN` to every request and forwards it to $DS_UPSTREAM (wrangler dev),
// streaming both bodies. Usage: node proxy.mjs (prints "listening <port>" once ready).
import http from "node:http";

const upstream = new URL(process.env.DS_UPSTREAM ?? "http://127.0.0.1:8787");
const token = process.env.DS_TOKEN;
if (!token) {
  console.error("DS_TOKEN is required");
  process.exit(2);
}
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

const server = http.createServer((req, res) => {
  const headers = { ...req.headers, host: upstream.host, authorization: `Bearer ${token}` };
  const forward = http.request(
    { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers, agent },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
      res.flushHeaders();
      answer.pipe(res);
    },
  );
  forward.on("error", (error) => {
    if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
    res.end(String(error));
  });
  res.on("close", () => forward.destroy());
  req.pipe(forward);
});
server.listen(Number(process.env.DS_PROXY_PORT ?? 0), "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
