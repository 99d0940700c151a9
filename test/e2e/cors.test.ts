/**
 * --cors-allowed-origins: no CORS headers by default; with origins named, preflights from them are
 * answered, others refused, and responses expose the gRPC/Connect status headers, on RPC and HTTP routes,
 * over HTTP/1.1 (fetch) and HTTP/2 (curl). A real browser calling from another origin: test/browser/.
 */
import { spawn } from "node:child_process";
import { Code } from "@connectrpc/connect";
import t from "tap";
import { KV } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, enc, rejection } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { runEdge, startEdge } from "../helpers/proxy.js";

const etcd = await startEtcd(t);
const APP = "http://app.example:8080";
const RANGE = "/etcdserverpb.KV/Range";

function preflight(url: string, origin: string, headers = "content-type,connect-protocol-version"): Promise<Response> {
  return fetch(url, { method: "OPTIONS", headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": headers } });
}

const rangeJson = (url: string, origin: string, key = "a2V5") =>
  fetch(url + RANGE, { method: "POST", headers: { origin, "content-type": "application/json" }, body: JSON.stringify({ key }) });

t.test("off by default: no CORS headers anywhere", async (t) => {
  const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
  const pre = await preflight(edge.url + RANGE, APP);
  t.equal(pre.headers.get("access-control-allow-origin"), null, "preflight not allowed");
  const res = await rangeJson(edge.url, APP);
  t.equal(res.status, 200, "the call itself works (a browser would hide the answer)");
  t.equal(res.headers.get("access-control-allow-origin"), null);
  t.equal((await fetch(edge.url + "/health", { headers: { origin: APP } })).headers.get("access-control-allow-origin"), null);
});

t.test("named origins: preflight, exposed headers, refusals", async (t) => {
  const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, `--cors-allowed-origins=${APP},https://other.example`]);
  const pre = await preflight(edge.url + RANGE, APP, "content-type,x-grpc-web,x-user-agent,token");
  t.equal(pre.status, 204);
  t.equal(pre.headers.get("access-control-allow-origin"), APP);
  t.match(pre.headers.get("access-control-allow-methods"), /POST/);
  const allowed = (pre.headers.get("access-control-allow-headers") ?? "").toLowerCase().split(/,\s*/);
  for (const h of ["content-type", "connect-protocol-version", "connect-timeout-ms", "x-grpc-web", "x-user-agent", "grpc-timeout", "token", "authorization"]) {
    t.ok(allowed.includes(h), `${h} may be sent`);
  }
  t.match(pre.headers.get("vary"), /Origin/);

  const refused = await preflight(edge.url + RANGE, "http://evil.example");
  t.equal(refused.status, 403, "a preflight from another origin is refused");
  t.equal(refused.headers.get("access-control-allow-origin"), null);

  const res = await rangeJson(edge.url, APP);
  t.equal(res.status, 200);
  t.equal(res.headers.get("access-control-allow-origin"), APP, "the answer names the origin");
  const exposed = (res.headers.get("access-control-expose-headers") ?? "").toLowerCase().split(/,\s*/);
  for (const h of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) t.ok(exposed.includes(h), `${h} exposed`);
  t.match(res.headers.get("vary"), /Origin/, "caches keep one answer per origin");
  const other = await rangeJson(edge.url, "http://evil.example");
  t.equal(other.headers.get("access-control-allow-origin"), null, "no allow-origin for an origin not named");

  const health = await fetch(edge.url + "/health", { headers: { origin: APP } });
  t.equal(health.headers.get("access-control-allow-origin"), APP, "HTTP routes too");
  t.match(await health.text(), /^\{"health":"true","reason":""[,}]/);

  // Native gRPC with an Origin (a gRPC client in a browser-like runtime): the compat path, CORS headers
  // on the answer and on a trailers-only error alike.
  const kv = clientFor(KV, "grpc", edge.url);
  let okOrigin: string | null = null;
  const ok = await kv.range({ key: enc("k") }, { headers: { origin: APP }, onHeader: (h) => { okOrigin = h.get("access-control-allow-origin"); } });
  t.ok(ok.header, "native gRPC with an Origin answers");
  t.equal(okOrigin, APP, "and names the origin");
  const err = await rejection(kv.range({ key: new Uint8Array() }, { headers: { origin: APP } }));
  t.equal(err.code, Code.InvalidArgument, `etcd's refusal keeps its code (${err.rawMessage})`);
  t.equal(err.metadata.get("access-control-allow-origin"), APP, "a trailers-only error names the origin too");

  // HTTP/2 (curl): a gRPC-Web error, whose status travels in headers the page must be allowed to read.
  const h2 = await curlHeaders(["--http2-prior-knowledge", "-H", `origin: ${APP}`, "-H", "content-type: application/grpc-web+proto", "-H", "x-grpc-web: 1",
    "--data-binary", "@-", edge.url + RANGE], Buffer.from([0, 0, 0, 0, 0]));
  t.match(h2, /^HTTP\/2 200/m);
  t.match(h2, new RegExp(`^access-control-allow-origin: ${APP}\\r?$`, "m"), "allow-origin over HTTP/2");
  t.match(h2, /^access-control-expose-headers: .*grpc-status/im, "grpc-status exposed over HTTP/2");
});

t.test("* allows any origin", async (t) => {
  const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, "--cors-allowed-origins=*"]);
  const pre = await preflight(edge.url + RANGE, "http://anything.example");
  t.equal(pre.status, 204);
  t.equal(pre.headers.get("access-control-allow-origin"), "*");
  t.equal((await rangeJson(edge.url, "http://anything.example")).headers.get("access-control-allow-origin"), "*");
});

t.test("a value that is not an origin is refused at start", async (t) => {
  for (const bad of ["http://app.example/path", "app.example", "*,http://app.example", "ftp://app.example"]) {
    const r = await runEdge(["start", `--endpoints=${etcd.endpoint}`, "--listen-addr=127.0.0.1:0", `--cors-allowed-origins=${bad}`]);
    t.equal(r.code, 2, `exit 2 for ${bad}`);
    t.match(r.out, /--cors-allowed-origins/, "the message names the flag");
  }
});

/** curl -sS -D - (response headers only, body discarded) with `input` on stdin. */
function curlHeaders(args: string[], input: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn("curl", ["-sS", "--max-time", "10", "-o", "/dev/null", "-D", "-", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    proc.stdout.on("data", (d: Buffer) => { out += d.toString(); });
    proc.stderr.on("data", (d: Buffer) => { err += d.toString(); });
    proc.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`curl exited ${code}: ${err}`))));
    proc.stdin.on("error", () => {}); // curl may exit before reading stdin; its exit code reports it
    proc.stdin.end(input);
  });
}
