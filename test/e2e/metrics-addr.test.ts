/**
 * --metrics-addr: a second listener with /metrics and /health only, as etcd's proxy has (etcdmain/
 * grpc_proxy.go mustMetricsListener): HTTP/1.1 at http://, the listener's TLS files at https:// (client
 * certificates included when --trusted-ca-file asks for them); RPCs, the JSON gateway and the UI are not
 * served there; https without listener TLS refuses to start, as etcd does.
 */
import { readFileSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import t, { type Test } from "tap";
import { makeCerts } from "../helpers/certs.js";
import { startEtcd } from "../helpers/etcd.js";
import { freePort } from "../helpers/ports.js";
import { runEdge, startEdge } from "../helpers/proxy.js";

const etcd = await startEtcd(t);
const certs = makeCerts(t);

interface Answer { status: number; body: string; httpVersion: string; contentType: string }

/** One HTTP/1.1 request (https when `tls` is given); `tls.cert`/`key` is the client certificate. */
function get(url: string, o: { method?: string; body?: string; headers?: Record<string, string>; tls?: { ca: string; cert?: string; key?: string } } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const { tls } = o;
    const options: https.RequestOptions = { method: o.method ?? "GET", headers: o.headers ?? {}, agent: false };
    if (tls) {
      options.ca = readFileSync(tls.ca);
      if (tls.cert) options.cert = readFileSync(tls.cert);
      if (tls.key) options.key = readFileSync(tls.key);
    }
    const request = url.startsWith("https:") ? https.request : http.request;
    const req = request(url, options, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => { body += d; });
      res.on("end", () => resolve({ status: res.statusCode!, body, httpVersion: res.httpVersion, contentType: String(res.headers["content-type"] ?? "") }));
    });
    req.on("error", reject);
    req.end(o.body);
  });
}

/** What must not be on the metrics address: an RPC in Connect JSON, the JSON gateway, the UI. */
async function checkNoRpc(t: Test, base: string, tls?: { ca: string; cert?: string; key?: string }): Promise<void> {
  const rpc = await get(`${base}/etcdserverpb.KV/Range`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key: "Zm9v" }), ...(tls ? { tls } : {}) });
  t.equal(rpc.status, 404, "a Connect RPC is not served there");
  t.equal(rpc.body, "404 page not found\n", "Go's 404 page, as etcd's proxy's mux answers");
  const gateway = await get(`${base}/v3/kv/range`, { method: "POST", body: JSON.stringify({ key: "Zm9v" }), ...(tls ? { tls } : {}) });
  t.equal(gateway.status, 404, "nor the JSON gateway");
  const version = await get(`${base}/version`, tls ? { tls } : {});
  t.equal(version.status, 404, "nor GET /version");
}

t.test("http://: /metrics and /health over HTTP/1.1, nothing else", async (t) => {
  const port = await freePort();
  const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, `--metrics-addr=http://127.0.0.1:${port}`, "--ui"]);
  t.match(edge.output(), `/metrics and /health also on http://127.0.0.1:${port}`, "the start line names it");
  const base = `http://127.0.0.1:${port}`;
  const health = await get(`${base}/health`);
  t.equal(health.status, 200);
  t.equal(health.httpVersion, "1.1");
  t.has(JSON.parse(health.body), { health: "true", reason: "" });
  // A call through the main port, so the RPC metrics have a series to show.
  const put = await get(`${edge.url}/etcdserverpb.KV/Put`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key: "bWV0cmljcw==", value: "dg==" }) });
  t.equal(put.status, 200, put.body);
  const metrics = await get(`${base}/metrics`);
  t.equal(metrics.status, 200);
  t.match(metrics.contentType, /^text\/plain/);
  t.match(metrics.body, /grpc_server_handled_total\{[^}]*grpc_method="Put"[^}]*\} [1-9]/, "the proxy's registry, the same one as on the main port");
  t.match(metrics.body, /etcd_edge_/);
  await checkNoRpc(t, base);
  t.equal((await get(`${base}/ui/`)).status, 404, "nor the UI (--ui is on for the main port)");
  t.equal((await get(`${edge.url}/ui/`)).status, 200, "which the main port serves");
  t.equal((await get(`${edge.url}/metrics`)).status, 200, "the main port keeps /metrics too, as etcd's proxy");
});

t.test("https://: the listener's certificate, and its client-certificate requirement", async (t) => {
  const port = await freePort();
  const edge = await startEdge(t, [
    `--endpoints=${etcd.endpoint}`, `--metrics-addr=https://localhost:${port}`,
    `--cert-file=${certs.server.cert}`, `--key-file=${certs.server.key}`, `--trusted-ca-file=${certs.ca}`,
  ], { tls: true });
  t.match(edge.output(), `/metrics and /health also on https://127.0.0.1:${port}`, "localhost binds the IPv4 loopback");
  const tls = { ca: certs.ca, cert: certs.client.cert, key: certs.client.key };
  const base = `https://127.0.0.1:${port}`;
  const health = await get(`${base}/health`, { tls });
  t.equal(health.status, 200);
  t.has(JSON.parse(health.body), { health: "true", reason: "" });
  const metrics = await get(`${base}/metrics`, { tls });
  t.equal(metrics.status, 200);
  t.match(metrics.body, /grpc_server_started_total|etcd_edge_/);
  await checkNoRpc(t, base, tls);
  const err = await get(`${base}/health`, { tls: { ca: certs.ca } }).then(() => undefined, (e: unknown) => e as Error);
  t.ok(err, "without a client certificate the handshake is refused, as on the main port");
});

t.test("https:// without listener TLS, or another scheme, refuses to start", async (t) => {
  const https = await runEdge(["start", `--endpoints=${etcd.endpoint}`, "--metrics-addr=https://127.0.0.1:1"]);
  t.equal(https.code, 2, https.out);
  t.match(https.out, /--metrics-addr https:\/\/127\.0\.0\.1:1: https needs listener TLS/);
  const unix = await runEdge(["start", `--endpoints=${etcd.endpoint}`, "--metrics-addr=unix://metrics.sock"]);
  t.equal(unix.code, 2, unix.out);
  t.match(unix.out, /--metrics-addr: unsupported scheme/);
  const bare = await runEdge(["start", `--endpoints=${etcd.endpoint}`, "--metrics-addr=127.0.0.1:9100"]);
  t.equal(bare.code, 2, bare.out);
  t.match(bare.out, /--metrics-addr: expected http:\/\/host:port or https:\/\/host:port/);
});
