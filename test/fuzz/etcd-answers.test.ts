/**
 * Property-based fuzzing of what etcd may answer (reliability issue, short form): a fake etcd on loopback
 * answers each call the way the property picks (garbage, truncated or compressed frames, a missing or
 * malformed status, a non-gRPC HTTP status, a stream reset, GOAWAY, silence, random frames on a Watch
 * stream), and every client call through the proxy must end with a gRPC status within its deadline,
 * the proxy staying up. A fake etcd is used only here: real etcd never answers like this.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import t from "tap";
import { RangeRequestSchema, RangeResponseSchema, WatchRequestSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import { enc } from "../helpers/clients.js";
import { startEdge } from "../helpers/proxy.js";
import { frame } from "../helpers/raw-rpc.js";

const RUNS = Number(process.env["FUZZ_RUNS"] ?? 60);
const SEED = Number(process.env["FUZZ_SEED"] ?? 20261130);
/** The client's deadline; the answer must come within it plus this margin. */
const DEADLINE_MS = 1500;
const MARGIN_MS = 3000;

type Answer =
  | { kind: "body"; status: number; headers: Record<string, string>; body: Uint8Array; trailers: Record<string, string> | undefined }
  | { kind: "reset"; code: number }
  | { kind: "goaway" }
  | { kind: "silence" };

let answer: Answer = { kind: "silence" };

const fake = http2.createServer();
fake.on("sessionError", () => {});
fake.on("stream", (stream, headers) => {
  stream.on("error", () => {});
  const path = String(headers[":path"]);
  stream.on("data", () => {});
  // Health probes and the cache's invalidation watch get the same treatment as every call.
  void path;
  const a = answer;
  switch (a.kind) {
    case "silence":
      return; // never answers: the caller's deadline must end the call
    case "reset":
      return void stream.close(a.code);
    case "goaway":
      return void stream.session?.goaway(http2.constants.NGHTTP2_INTERNAL_ERROR);
    case "body":
      try {
        stream.respond({ ":status": a.status, ...a.headers }, { waitForTrailers: a.trailers !== undefined });
        if (a.trailers) stream.once("wantTrailers", () => { try { stream.sendTrailers(a.trailers!); } catch { stream.close(); } });
        stream.end(Buffer.from(a.body));
      } catch {
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      }
  }
});
await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
t.teardown(() => new Promise<void>((resolve) => { fake.close(() => resolve()); for (const s of sessions) s.destroy(); }));
const sessions = new Set<http2.ServerHttp2Session>();
fake.on("session", (s) => { sessions.add(s); s.on("close", () => sessions.delete(s)); });
const fakeAddr = `127.0.0.1:${(fake.address() as AddressInfo).port}`;

const edge = await startEdge(t, [`--endpoints=${fakeAddr}`]);

const goodRange = frame(toBinary(RangeResponseSchema, create(RangeResponseSchema, { count: 1n })));
const answers: fc.Arbitrary<Answer> = fc.oneof(
  fc.record({
    kind: fc.constant("body" as const),
    status: fc.constantFrom(200, 200, 200, 400, 404, 429, 500, 503),
    headers: fc.record({
      "content-type": fc.constantFrom("application/grpc", "application/grpc+proto", "text/html", "application/json"),
      "grpc-encoding": fc.constantFrom("identity", "gzip", "snappy"),
    }, { requiredKeys: ["content-type"] }),
    body: fc.oneof(
      fc.uint8Array({ maxLength: 80 }),
      fc.uint8Array({ maxLength: 80 }).map((b) => new Uint8Array(frame(b))),
      fc.uint8Array({ maxLength: 80 }).map((b) => new Uint8Array(frame(b, 1))),
      fc.integer({ min: 1, max: 8 }).map((cut) => new Uint8Array(goodRange.subarray(0, goodRange.length - cut))),
      fc.constant(new Uint8Array(Buffer.concat([goodRange, goodRange]))),
      fc.constant(new Uint8Array(Buffer.from([0, 0xff, 0xff, 0xff, 0xff]))),
    ),
    trailers: fc.option(fc.record({
      "grpc-status": fc.oneof(fc.integer({ min: 0, max: 20 }).map(String), fc.constantFrom("", "x", "-1", "99999999999")),
      "grpc-message": fc.oneof(fc.string({ maxLength: 30 }).map((s) => s.replace(/[^\x20-\x7e]/g, "?")), fc.constantFrom("%", "%zz", "%E2%82", "etcdserver%3A%20x")),
    }, { requiredKeys: ["grpc-status"] }), { nil: undefined }),
  }),
  fc.record({ kind: fc.constant("reset" as const), code: fc.integer({ min: 0, max: 13 }) }),
  fc.constant({ kind: "goaway" as const }),
  fc.constant({ kind: "silence" as const }),
);

/** A linearizable Range through the proxy (a new key each time: no cache, no shared flight). */
let n = 0;
function rangeThroughProxy(): Promise<string> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(edge.url);
    session.on("error", () => {});
    const req = session.request({ ":method": "POST", ":path": "/etcdserverpb.KV/Range", "content-type": "application/grpc", te: "trailers", "grpc-timeout": `${DEADLINE_MS}m` });
    let status: string | undefined;
    const timer = setTimeout(() => { session.destroy(); reject(new Error(`no status within ${DEADLINE_MS + MARGIN_MS} ms`)); }, DEADLINE_MS + MARGIN_MS);
    req.on("response", (h) => { if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]); });
    req.on("trailers", (h) => { if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]); });
    req.on("data", () => {});
    req.on("error", () => {});
    req.on("close", () => { clearTimeout(timer); session.close(); resolve(status ?? "reset"); });
    req.end(frame(toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: enc(`k${n++}`) }))));
  });
}

/** A Watch through the proxy while etcd answers its watch stream with `answer`: a status or "open". */
function watchThroughProxy(): Promise<string> {
  return new Promise((resolve) => {
    const session = http2.connect(edge.url);
    session.on("error", () => {});
    const req = session.request({ ":method": "POST", ":path": "/etcdserverpb.Watch/Watch", "content-type": "application/grpc", te: "trailers" });
    let status: string | undefined;
    const timer = setTimeout(() => { session.destroy(); resolve("open"); }, MARGIN_MS);
    req.on("response", (h) => { if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]); });
    req.on("trailers", (h) => { if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]); });
    req.on("data", () => {});
    req.on("error", () => {});
    req.on("close", () => { clearTimeout(timer); session.close(); resolve(status ?? "reset"); });
    req.write(frame(toBinary(WatchRequestSchema, create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: enc(`w${n++}`) } } }))));
  });
}

async function holds<Ts extends unknown[]>(t: Pick<typeof import("tap").default, "ok">, property: fc.IAsyncProperty<Ts>, runs = RUNS): Promise<void> {
  const r = await fc.check(property, { numRuns: runs, seed: SEED });
  t.ok(!r.failed, r.failed ? `failed (seed ${SEED}, path ${r.counterexamplePath}): ${JSON.stringify(r.counterexample, (_, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("hex").slice(0, 80) : v)).slice(0, 500)} ${String(r.errorInstance ?? "").slice(0, 300)}` : `${r.numRuns} answers, seed ${SEED}`);
}

t.test("unary: whatever etcd answers, the client gets a gRPC status within its deadline", async (t) => {
  const seen = new Set<string>();
  await holds(t, fc.asyncProperty(answers, async (a) => {
    answer = a;
    const status = await rangeThroughProxy();
    seen.add(status);
    // An answer that is a valid gRPC OK with one good message may pass as OK; anything else is an error.
    return /^(\d|1[0-6])$/.test(status);
  }));
  t.comment(`statuses seen: ${[...seen].sort().join(", ")}`);
  t.equal(edge.process.exitCode, null, "the proxy is alive");
  answer = { kind: "body", status: 200, headers: { "content-type": "application/grpc" }, body: goodRange, trailers: { "grpc-status": "0" } };
  t.equal(await rangeThroughProxy(), "0", "and serves again once etcd answers well");
});

t.test("Watch: whatever etcd answers on the watch stream, the proxy stays up and the client ends cleanly or waits", async (t) => {
  await holds(t, fc.asyncProperty(answers, async (a) => {
    answer = a;
    const status = await watchThroughProxy();
    return /^(\d|1[0-6]|open)$/.test(status);
  }), Math.min(RUNS, 30));
  t.equal(edge.process.exitCode, null, "the proxy is alive");
  t.equal((await fetch(`${edge.url}/metrics`)).status, 200, "and answers /metrics");
});
