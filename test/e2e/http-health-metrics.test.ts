/**
 * curl against the proxy's one cleartext port: /health and /metrics over HTTP/1.1 and h2c prior knowledge
 * (etcd's own proxy needs --http1.1 for these), and RPCs spoken by hand: a Connect JSON Range and a
 * gRPC-Web Range with a hand-framed body.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import t from "tap";
import { RangeResponseSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import { startEtcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { startEdge } from "../helpers/proxy.js";

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);

type HttpVersion = "1.1" | "2";
const VERSIONS: readonly HttpVersion[] = ["1.1", "2"];

interface CurlResult {
  status: number;
  /** What curl says was spoken: "1.1" or "2". */
  httpVersion: string;
  headers: string;
  body: Buffer;
}

const WRITE_OUT_MARK = "\n@@curl@@";
const headDir = mkdtempSync(join(tmpdir(), "etcd-edge-curl-"));
t.teardown(() => rmSync(headDir, { recursive: true, force: true }));
let calls = 0;

/**
 * curl with --http1.1 or --http2-prior-knowledge (h2c without an upgrade). The response head goes to a
 * file (-D), the body to stdout followed by a marker, the status and the HTTP version curl spoke.
 * (curl 7.88 crashes when -D or -w write to a piped stderr, hence the file.)
 */
function curl(version: HttpVersion, path: string, o: { method?: string; headers?: string[]; body?: Buffer | string; base?: string } = {}): Promise<CurlResult> {
  const headFile = join(headDir, `head-${++calls}`);
  const args = ["-sS", "-D", headFile, "-w", `${WRITE_OUT_MARK}%{http_code} %{http_version}`, version === "2" ? "--http2-prior-knowledge" : "--http1.1"];
  if (o.method) args.push("-X", o.method);
  for (const h of o.headers ?? []) args.push("-H", h);
  if (o.body !== undefined) args.push("--data-binary", "@-");
  args.push(`${o.base ?? edge.url}${path}`);
  return new Promise((resolve, reject) => {
    const proc = spawn("curl", args, { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    proc.stdout.on("data", (d: Buffer) => out.push(d));
    proc.stderr.on("data", (d: Buffer) => { err += d.toString(); });
    proc.on("close", (code, signal) => {
      const all = Buffer.concat(out);
      const at = all.lastIndexOf(WRITE_OUT_MARK);
      if (code !== 0 || at === -1) return reject(new Error(`curl ${args.join(" ")} exited ${code ?? signal}: ${err}`));
      const [status, httpVersion] = all.subarray(at + WRITE_OUT_MARK.length).toString().trim().split(" ");
      resolve({ status: Number(status), httpVersion: httpVersion!, headers: readFileSync(headFile, "latin1"), body: all.subarray(0, at) });
    });
    // curl may exit before reading its stdin (a refused connection): that is its exit code to report.
    proc.stdin.on("error", () => {});
    proc.stdin.end(o.body ?? "");
  });
}

/** The value of one sample in Prometheus text, 0 when the series does not exist yet. */
function sample(metrics: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of metrics.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.indexOf("}"));
    if (want.every((w) => labelText.split(",").includes(w))) return Number(line.slice(line.indexOf("}") + 1));
  }
  return 0;
}

const b64 = (s: string) => Buffer.from(s).toString("base64");

await etcdctl(edge.addr, ["put", "http/k", "the value"]);

t.test("GET /health is 200 with health true over HTTP/1.1 and h2c", async (t) => {
  for (const v of VERSIONS) {
    const r = await curl(v, "/health");
    t.equal(r.httpVersion, v, `spoke HTTP/${v}`);
    t.equal(r.status, 200, `HTTP/${v} status`);
    t.match(r.body.toString(), /"health":"true"/, `HTTP/${v} body`);
    t.has(JSON.parse(r.body.toString()), { health: "true", reason: "" }, "etcd 3.5's body shape");
  }
});

t.test("/health refuses other methods with 405", async (t) => {
  for (const v of VERSIONS) {
    for (const method of ["POST", "PUT", "DELETE"]) {
      const r = await curl(v, "/health", { method, body: "" });
      t.equal(r.status, 405, `${method} over HTTP/${v}`);
      t.match(r.headers, /^allow: GET\r?$/im, "names the allowed method");
    }
  }
});

t.test("a Connect JSON Range returns the value", async (t) => {
  const direct = JSON.parse((await etcdctl(etcd.endpoint, ["get", "http/k", "-w", "json"])).stdout) as { kvs: { mod_revision: number }[] };
  for (const v of VERSIONS) {
    const r = await curl(v, "/etcdserverpb.KV/Range", { method: "POST", headers: ["content-type: application/json"], body: JSON.stringify({ key: b64("http/k") }) });
    t.equal(r.status, 200, `HTTP/${v}: ${r.body.toString()}`);
    t.match(r.headers, /^content-type: application\/json/im);
    const res = JSON.parse(r.body.toString()) as { kvs: { key: string; value: string; modRevision: string }[]; count: string };
    t.equal(res.kvs.length, 1);
    t.equal(Buffer.from(res.kvs[0]!.value, "base64").toString(), "the value");
    t.equal(Buffer.from(res.kvs[0]!.key, "base64").toString(), "http/k");
    t.equal(res.kvs[0]!.modRevision, String(direct.kvs[0]!.mod_revision), "int64 as a JSON string, as etcd has it");
    t.equal(res.count, "1");
  }
  const bad = await curl("1.1", "/etcdserverpb.KV/Range", { method: "POST", headers: ["content-type: application/json"], body: "{not json" });
  t.equal(bad.status, 400, "malformed JSON is a 400");
  t.equal((JSON.parse(bad.body.toString()) as { code: string }).code, "invalid_argument");
});

/** One gRPC-Web frame: flag byte, 4-byte big-endian length, payload (wire.md §2). */
function frame(flag: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** RangeRequest{key} by hand: field 1, wire type 2 (tag 0x0a), varint length (short keys only), bytes. */
function rangeRequest(key: string): Buffer {
  const k = Buffer.from(key);
  if (k.length > 127) throw new Error("a one-byte varint length only");
  return Buffer.concat([Buffer.from([0x0a, k.length]), k]);
}

function unframe(body: Buffer): { flag: number; payload: Buffer }[] {
  const frames = [];
  for (let at = 0; at < body.length;) {
    const len = body.readUInt32BE(at + 1);
    frames.push({ flag: body[at]!, payload: body.subarray(at + 5, at + 5 + len) });
    at += 5 + len;
  }
  return frames;
}

t.test("a gRPC-Web Range with a hand-framed body returns the value", async (t) => {
  for (const v of VERSIONS) {
    const r = await curl(v, "/etcdserverpb.KV/Range", {
      method: "POST",
      headers: ["content-type: application/grpc-web+proto", "x-grpc-web: 1"],
      body: frame(0, rangeRequest("http/k")),
    });
    t.equal(r.status, 200, `HTTP/${v}`);
    t.match(r.headers, /^content-type: application\/grpc-web\+proto/im);
    const frames = unframe(r.body);
    t.same(frames.map((f) => f.flag), [0, 0x80], "one message frame, then the trailer frame");
    const res = fromBinary(RangeResponseSchema, frames[0]!.payload);
    t.equal(Buffer.from(res.kvs[0]!.value).toString(), "the value");
    t.match(frames[1]!.payload.toString(), /^grpc-status: ?0\r?$/m, "status OK in the trailer frame");
  }
});

t.test("/metrics is Prometheus text with RPC counts per protocol", async (t) => {
  const labels = (protocol: string) => ({ grpc_type: "unary", grpc_service: "etcdserverpb.KV", grpc_method: "Range", protocol });
  const scrape = async () => (await curl("1.1", "/metrics")).body.toString();
  const before = await scrape();
  for (let i = 0; i < 3; i++) await etcdctl(edge.addr, ["get", "http/k"]);
  for (let i = 0; i < 2; i++) await curl("2", "/etcdserverpb.KV/Range", { method: "POST", headers: ["content-type: application/json"], body: JSON.stringify({ key: b64("http/k") }) });
  await curl("2", "/etcdserverpb.KV/Range", { method: "POST", headers: ["content-type: application/grpc-web+proto"], body: frame(0, rangeRequest("http/k")) });
  for (const v of VERSIONS) {
    const r = await curl(v, "/metrics");
    t.equal(r.status, 200, `HTTP/${v}`);
    t.equal(r.httpVersion, v);
    t.match(r.headers, /^content-type: text\/plain; version=0\.0\.4/im, "Prometheus text format");
    const text = r.body.toString();
    t.match(text, /^# TYPE grpc_server_started_total counter$/m);
    t.match(text, /^# TYPE grpc_server_handling_seconds histogram$/m);
    const delta = (protocol: string) => sample(text, "grpc_server_started_total", labels(protocol)) - sample(before, "grpc_server_started_total", labels(protocol));
    t.equal(delta("grpc"), 3, "three etcdctl gets, counted as gRPC");
    t.equal(delta("connect"), 2, "two Connect JSON Ranges");
    t.equal(delta("grpc-web"), 1, "one gRPC-Web Range");
    t.ok(sample(text, "grpc_server_handled_total", { ...labels("grpc"), grpc_code: "OK" }) >= 3, "handled, by code");
  }
});

t.test("GET /health is 503 with a reason while etcd is down", async (t) => {
  // A second etcd and proxy of its own: stopping the shared etcd would break the other tests.
  const doomed = await startEtcd(t);
  const proxy = await startEdge(t, [`--endpoints=${doomed.endpoint}`]);
  t.equal((await curl("1.1", "/health", { base: proxy.url })).status, 200, "healthy while etcd runs");
  await doomed.stop();
  for (const v of VERSIONS) {
    const r = await curl(v, "/health", { base: proxy.url });
    t.equal(r.status, 503, `HTTP/${v}`);
    const body = JSON.parse(r.body.toString()) as { health: string; reason: string };
    t.equal(body.health, "false");
    t.match(body.reason, /\S/, `a reason: ${body.reason}`);
  }
});
