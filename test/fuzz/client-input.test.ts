/**
 * Property-based fuzzing of every entry point a client reaches, seeded and with a fixed budget (FUZZ_RUNS,
 * 60 per property by default; the benchmark's long form raises it): native gRPC frames over HTTP/2 (bad
 * lengths, compressed flag without a codec, truncation, garbage protobuf, deep nesting, bad headers),
 * gRPC-Web binary and text over HTTP/1.1, Connect JSON and binary, and the JSON gateway (wrong types, huge
 * numbers, deep nesting). Every answer must be a well-formed error or result in the caller's protocol,
 * within a bound, and the proxy must keep serving others: /health and a real Range after each property.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import * as http2 from "node:http2";
import t from "tap";
import { RangeRequestSchema, RequestOpSchema, TxnRequestSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import { enc } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { startEdge } from "../helpers/proxy.js";
import { frame } from "../helpers/raw-rpc.js";

const RUNS = Number(process.env["FUZZ_RUNS"] ?? 60);
const SEED = Number(process.env["FUZZ_SEED"] ?? 20261130);
/** No answer may take longer: every call carries no deadline, so a hang shows as this. */
const ANSWER_MS = 10_000;
/**
 * Streams may rightly stay open: a watch with no create request, or bidi requests that all decode, stay
 * open and silent after the client's half-close, on etcd too. They get this long, then the client leaves.
 */
const STREAM_WAIT_MS = 500;

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, "--max-send-bytes=65536"]);

const METHODS = ["/etcdserverpb.KV/Range", "/etcdserverpb.KV/Put", "/etcdserverpb.KV/Txn", "/etcdserverpb.KV/DeleteRange", "/etcdserverpb.Lease/LeaseGrant",
  "/etcdserverpb.Watch/Watch", "/etcdserverpb.Lease/LeaseKeepAlive", "/etcdserverpb.Maintenance/Status", "/etcdedge.v1.Edge/Watch", "/v3electionpb.Election/Campaign", "/etcdserverpb.KV/Nope"];

/**
 * A Txn nested `depth` levels deep and `width` ops wide. The nesting is written byte by byte
 * (TxnRequest.success = 2, RequestOp.request_txn = 4): protobuf-es's own encoder recurses too deep for it.
 */
function txn(depth: number, width: number): Uint8Array {
  let bytes = Buffer.from(toBinary(TxnRequestSchema, create(TxnRequestSchema, { success: Array.from({ length: width }, () => create(RequestOpSchema, { request: { case: "requestRange", value: { key: enc("a") } } })) })));
  const field = (tag: number, inner: Buffer) => Buffer.concat([Buffer.from([tag]), varint(inner.length), inner]);
  for (let i = 0; i < depth; i++) bytes = field(0x12, field(0x22, bytes));
  return new Uint8Array(bytes);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n >>>= 7; }
  out.push(n);
  return Buffer.from(out);
}

/** Bytes a client might send as a gRPC body: garbage, bad frames, truncated or mislabelled good ones. */
const grpcBody = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.record({ flag: fc.integer({ min: 0, max: 255 }), length: fc.oneof(fc.integer({ min: 0, max: 100 }), fc.constant(0xffffffff), fc.integer({ min: 65_000, max: 2 ** 31 })), payload: fc.uint8Array({ maxLength: 100 }) })
    .map(({ flag, length, payload }) => { const b = Buffer.alloc(5 + payload.length); b[0] = flag; b.writeUInt32BE(length >>> 0, 1); b.set(payload, 5); return new Uint8Array(b); }),
  fc.integer({ min: 0, max: 20 }).map((cut) => { const f = frame(toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: enc("fuzz") }))); return new Uint8Array(f.subarray(0, Math.max(0, f.length - cut))); }),
  fc.uint8Array({ maxLength: 200 }).map((garbage) => new Uint8Array(frame(garbage))),
  fc.constantFrom(frame(txn(5_000, 1)), frame(txn(0, 5_000)), Buffer.concat([frame(new Uint8Array([0x0a, 0x01, 0x61])), frame(new Uint8Array([0x0a]))])).map((b) => new Uint8Array(b)),
);
const grpcHeaders = fc.record({
  "grpc-timeout": fc.option(fc.oneof(fc.constantFrom("1m", "2592000S", "99999999H", "0n", "-1S", "abc", "1.5S", "100000000m"), fc.string({ maxLength: 12 })), { nil: undefined }),
  "grpc-encoding": fc.option(fc.constantFrom("identity", "gzip", "deflate", "snappy", "x"), { nil: undefined }),
  "content-type": fc.constantFrom("application/grpc", "application/grpc+proto", "application/grpc+json", "application/grpc-web+proto", "application/grpc;x=y"),
  token: fc.option(fc.string({ maxLength: 20 }).map((s) => s.replace(/[^\x21-\x7e]/g, "x")), { nil: undefined }),
});

/**
 * One connection for every call, as a real client has: a bad call must not stall the others on it.
 * Replaced if the server ends it.
 */
let shared: http2.ClientHttp2Session | undefined;
t.teardown(() => shared?.close());

/** One native gRPC call: its status code, or "reset" when the server reset the stream; throws on a hang. */
function grpcCall(path: string, headers: Record<string, string | undefined>, body: Uint8Array): Promise<string> {
  if (!shared || shared.closed || shared.destroyed) {
    shared = http2.connect(edge.url);
    shared.on("error", () => {});
  }
  return grpcCallOn(shared, path, headers, body);
}

function grpcCallOn(session: http2.ClientHttp2Session, path: string, headers: Record<string, string | undefined>, body: Uint8Array): Promise<string> {
  return new Promise((resolve, reject) => {
    const clean = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined && v !== "")) as http2.OutgoingHttpHeaders;
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request({ ":method": "POST", ":path": path, te: "trailers", ...clean });
    } catch {
      return resolve("refused by the client library");
    }
    let status: string | undefined;
    // A bidi stream whose requests all decode stays open after the client's half-close, as on etcd.
    const mayStayOpen = BIDI.has(path) && wellFormedFrames(body);
    const timer = setTimeout(() => {
      req.close();
      if (mayStayOpen) resolve("open");
      else reject(new Error(`no answer to ${path} within ${ANSWER_MS} ms`));
    }, mayStayOpen ? STREAM_WAIT_MS : ANSWER_MS);
    req.on("response", (h) => { if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]); else if (h[":status"] !== 200) status = `http ${h[":status"]}`; });
    req.on("trailers", (h) => { if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]); });
    // gRPC-Web over HTTP/2 carries its status in a trailer frame of the body.
    let answer = "";
    req.on("data", (d: Buffer) => { if (answer.length < 4096) answer += d.toString("latin1"); });
    req.on("error", () => {});
    req.on("close", () => { clearTimeout(timer); resolve(status ?? /grpc-status: ?(\d+)/.exec(answer)?.[1] ?? "reset"); });
    // A bidi RPC stays open while the client's side is open: half-close after the body.
    req.end(body);
  });
}

/**
 * Runs a property with the seed and budget; a failure is reported with its counterexample cut short
 * (fast-check's own report can be megabytes of bytes).
 */
async function holds<Ts extends unknown[]>(t: Pick<typeof import("tap").default, "ok" | "comment">, property: fc.IAsyncProperty<Ts>): Promise<void> {
  const r = await fc.check(property, { numRuns: RUNS, seed: SEED });
  const example = r.counterexample ? JSON.stringify(r.counterexample, (_, v: unknown) => (v instanceof Uint8Array ? `bytes(${v.length}):${Buffer.from(v.subarray(0, 40)).toString("hex")}` : v)).slice(0, 600) : "";
  t.ok(!r.failed, r.failed ? `failed after ${r.numRuns} runs (seed ${SEED}, path ${r.counterexamplePath}): ${example} ${String(r.errorInstance ?? "").slice(0, 300)}` : `${r.numRuns} inputs, seed ${SEED}`);
}

const BIDI = new Set(["/etcdserverpb.Watch/Watch", "/etcdserverpb.Lease/LeaseKeepAlive"]);

/** Complete, uncompressed frames within the size bound: requests a bidi RPC may take and keep going. */
function wellFormedFrames(body: Uint8Array): boolean {
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  let at = 0;
  while (at < b.length) {
    if (b.length - at < 5 || b[at] !== 0) return false;
    const len = b.readUInt32BE(at + 1);
    if (len > 65536 || at + 5 + len > b.length) return false;
    at += 5 + len;
  }
  return true;
}

/** The proxy still serves: /health and a real Range. */
async function stillServing(t: Pick<typeof import("tap").default, "equal" | "comment">): Promise<void> {
  t.equal(edge.process.exitCode, null, "the proxy process is alive");
  t.equal((await fetch(`${edge.url}/health`)).status, 200, "/health answers");
  const ok = await grpcCall("/etcdserverpb.KV/Range", { "content-type": "application/grpc" }, frame(toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: enc("fuzz") }))));
  t.equal(ok, "0", "a real Range still succeeds");
}

t.test("native gRPC over HTTP/2: any body and headers get a gRPC status, never a hang", async (t) => {
  const seen = new Set<string>();
  await holds(t, fc.asyncProperty(fc.constantFrom(...METHODS), grpcHeaders, grpcBody, async (path, headers, body) => {
    const status = await grpcCall(path, headers, body);
    seen.add(status);
    return /^(\d|1[0-6]|http 4\d\d|http 5\d\d|reset|open|refused by the client library)$/.test(status);
  }));
  t.comment(`statuses seen: ${[...seen].sort().join(", ")}`);
  await stillServing(t);
});

/** Server streams stay open after their first message: their answer is read this long. */
const SERVER_STREAMS = new Set(["/etcdedge.v1.Edge/Watch"]);

/** A response body, whole, or for a stream whatever came within STREAM_WAIT_MS. */
async function bodyOf(res: Response, stream: boolean): Promise<Buffer> {
  if (!stream) return Buffer.from(await res.arrayBuffer());
  const reader = res.body!.getReader();
  const chunks: Uint8Array[] = [];
  const until = Date.now() + STREAM_WAIT_MS;
  for (;;) {
    const left = until - Date.now();
    if (left <= 0) break;
    const r = await Promise.race([reader.read(), new Promise<undefined>((done) => setTimeout(done, left))]);
    if (!r || r.done) break;
    chunks.push(r.value);
  }
  await reader.cancel().catch(() => {});
  return Buffer.concat(chunks);
}

const webBody = fc.oneof(grpcBody, grpcBody.map((b) => new Uint8Array(Buffer.from(Buffer.from(b).toString("base64")))), fc.string({ maxLength: 40 }).map((s) => new TextEncoder().encode(s)));

t.test("gRPC-Web (binary and text) over HTTP/1.1: a status in headers or the trailer frame, never a hang", async (t) => {
  await holds(t, fc.asyncProperty(fc.constantFrom(...METHODS), fc.constantFrom("application/grpc-web", "application/grpc-web+proto", "application/grpc-web-text", "application/grpc-web-text+proto"), webBody, async (path, contentType, body) => {
    const res = await fetch(edge.url + path, { method: "POST", headers: { "content-type": contentType, "x-grpc-web": "1" }, body, signal: AbortSignal.timeout(ANSWER_MS) });
    const stream = SERVER_STREAMS.has(path);
    const text = await bodyOf(res, stream);
    const headerStatus = res.headers.get("grpc-status");
    const decoded = contentType.includes("text") ? Buffer.from(text.toString("latin1"), "base64") : text;
    if (res.status !== 200) return res.status >= 400 && res.status < 600;
    // A server stream that is still open has sent its first message (a frame) or nothing yet.
    return headerStatus !== null || /grpc-status:/.test(decoded.toString("latin1")) || (stream && (decoded.length === 0 || decoded[0] === 0));
  }));
  await stillServing(t);
});

/** JSON a client might send: any value, deep nesting, huge numbers, wrong types for etcd's fields. */
const jsonBody = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc.record({ key: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.array(fc.string())), range_end: fc.oneof(fc.string(), fc.double()), limit: fc.oneof(fc.constant("99999999999999999999999"), fc.double(), fc.string()), revision: fc.oneof(fc.bigInt().map(String), fc.constant(-1)) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
  fc.integer({ min: 1_000, max: 20_000 }).map((depth) => "[".repeat(depth) + "]".repeat(depth)),
  fc.integer({ min: 1_000, max: 20_000 }).map((depth) => '{"a":'.repeat(depth) + "1" + "}".repeat(depth)),
  fc.string({ maxLength: 60 }),
);

t.test("Connect JSON and binary: an HTTP status and Connect's error body, never a hang", async (t) => {
  await holds(t, fc.asyncProperty(fc.constantFrom(...METHODS), fc.constantFrom("application/json", "application/proto", "application/connect+json", "application/connect+proto"), fc.oneof(jsonBody, grpcBody.map((b) => Buffer.from(b).toString("latin1"))), async (path, contentType, body) => {
    const res = await fetch(edge.url + path, { method: "POST", headers: { "content-type": contentType, "connect-protocol-version": "1" }, body, signal: AbortSignal.timeout(ANSWER_MS) });
    const text = await res.text();
    if (res.status === 200) return true;
    // connect-es's bodiless refusals: a content type the method cannot take (415), a bidi RPC over
    // HTTP/1.1 (505).
    if (res.status === 415 || res.status === 505) return text === "";
    if (contentType.startsWith("application/connect+")) return res.status >= 400 && res.status < 600;
    const err = JSON.parse(text) as { code?: unknown };
    return res.status >= 400 && res.status < 600 && typeof err.code === "string";
  }));
  await stillServing(t);
});

const STREAMS = new Set(["/v3/watch", "/v3/lease/keepalive"]);

const GATEWAY = ["/v3/kv/range", "/v3/kv/put", "/v3/kv/txn", "/v3/kv/deleterange", "/v3/lease/grant", "/v3/watch", "/v3/lease/keepalive", "/v3/auth/role/get", "/v3/maintenance/status", "/v3/election/campaign"];

t.test("the JSON gateway: a JSON result or grpc-gateway's error body, never a hang", async (t) => {
  await holds(t, fc.asyncProperty(fc.constantFrom(...GATEWAY), jsonBody, fc.option(fc.constantFrom("1m", "abc", "-5S", "99999999999999999999H"), { nil: undefined }), async (path, body, timeout) => {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), STREAMS.has(path) ? STREAM_WAIT_MS : ANSWER_MS);
    try {
      const res = await fetch(edge.url + path, { method: "POST", headers: { "content-type": "application/json", ...(timeout ? { "grpc-timeout": timeout } : {}) }, body, signal: abort.signal }).catch((err: Error) => err);
      if (res instanceof Error) return STREAMS.has(path) && abort.signal.aborted;
      if (res.status === 200) {
        // Streams (watch, keep-alive) stay open: their first line is enough.
        const reader = res.body!.getReader();
        const first = await reader.read().catch(() => undefined);
        await reader.cancel().catch(() => {});
        return first === undefined ? abort.signal.aborted : first.done || first.value.length > 0;
      }
      const err = JSON.parse(await res.text()) as { code?: unknown; message?: unknown };
      return res.status >= 400 && res.status < 600 && typeof err.code === "number" && typeof err.message === "string";
    } finally {
      clearTimeout(timer);
    }
  }));
  await stillServing(t);
});

t.test("HTTP/1.1 and HTTP/2 headers: odd methods, paths and huge headers are refused, never fatal", async (t) => {
  await holds(t, fc.asyncProperty(fc.constantFrom("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"), fc.oneof(fc.constantFrom(...METHODS, ...GATEWAY, "/health", "/metrics", "/", "//", "/%", "/v3/../health"), fc.webPath()), fc.integer({ min: 0, max: 20_000 }), async (method, path, headerSize) => {
    const res = await fetch(edge.url + (path.startsWith("/") ? path : `/${path}`), { method, headers: { "x-fuzz": "v".repeat(headerSize) }, signal: AbortSignal.timeout(ANSWER_MS) }).catch((err: Error) => err);
    if (res instanceof Error) return /fetch failed|header|socket/i.test(`${res.message} ${String(res.cause)}`);
    await res.arrayBuffer();
    return res.status >= 200 && res.status < 600;
  }));
  await stillServing(t);
});
