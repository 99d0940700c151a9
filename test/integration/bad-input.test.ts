/**
 * Bad input is never fatal: unknown RPCs, undecodable bodies, oversized requests, a dead etcd and clients
 * that vanish mid-stream each get a clear error (or a released upstream stream), and the proxy keeps serving
 * on the same connection and on others.
 */
import { create, createFileRegistry, toBinary } from "@bufbuild/protobuf";
import { EmptySchema, FileDescriptorProtoSchema, file_google_protobuf_empty } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import * as http from "node:http";
import * as http2 from "node:http2";
import t from "tap";
import { KV, Maintenance, RangeRequestSchema, Watch, WatchRequestSchema, type WatchRequest } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, enc, PROTOCOLS, transportFor, rejection } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { waitFor } from "../helpers/ports.js";
import { startEdge } from "../helpers/proxy.js";
import { connectEndStream, frame, grpcStatus, grpcWebStatus, raw } from "../helpers/raw-rpc.js";
import { AsyncQueue, nextWithin } from "../helpers/streams.js";
import { etcdWatchers, settledEtcdWatchers } from "../helpers/watch-session.js";

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);

const rangeBytes = () => toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: enc("bad-input-probe") }));

/** A service that etcd does not have (etcdserverpb.Nope) and a method that KV does not have (KV/Nope). */
function madeUpServices() {
  const file = create(FileDescriptorProtoSchema, {
    name: "made-up.proto",
    package: "etcdserverpb",
    dependency: ["google/protobuf/empty.proto"],
    syntax: "proto3",
    service: [
      { name: "KV", method: [{ name: "Nope", inputType: ".google.protobuf.Empty", outputType: ".google.protobuf.Empty" }] },
      { name: "Nope", method: [{ name: "Range", inputType: ".google.protobuf.Empty", outputType: ".google.protobuf.Empty" }] },
    ],
  });
  const registry = createFileRegistry(file, (name) => (name === "google/protobuf/empty.proto" ? file_google_protobuf_empty : undefined));
  return { kvNope: registry.getService("etcdserverpb.KV")!, nopeService: registry.getService("etcdserverpb.Nope")! };
}

t.test("unknown method and unknown service are Unimplemented in every protocol", async (t) => {
  const { kvNope, nopeService } = madeUpServices();
  for (const protocol of PROTOCOLS) {
    for (const httpVersion of protocol === "grpc" ? (["2"] as const) : (["2", "1.1"] as const)) {
      const transport = transportFor(protocol, edge.url, httpVersion);
      // The services are made at run time, so their clients have no static method types.
      const kvWithNope = createClient(kvNope, transport) as unknown as { nope(m: object): Promise<unknown> };
      const nope = createClient(nopeService, transport) as unknown as { range(m: object): Promise<unknown> };
      const where = `${protocol} over HTTP/${httpVersion}`;
      const noMethod = await rejection(kvWithNope.nope(create(EmptySchema)));
      t.equal(noMethod.code, Code.Unimplemented, `KV/Nope over ${where}: ${noMethod.message}`);
      const noService = await rejection(nope.range(create(EmptySchema)));
      t.equal(noService.code, Code.Unimplemented, `Nope/Range over ${where}: ${noService.message}`);
      // The same client goes on working.
      const ok = await clientFor(KV, protocol, edge.url, httpVersion).range({ key: enc("k") });
      t.ok(ok.header, `a real call after them over ${where}`);
    }
  }
  // Raw gRPC, to see the wire: a trailers-only answer that names the path.
  const session = http2.connect(edge.url);
  t.teardown(() => session.close());
  const answer = await raw(session, "/etcdserverpb.KV/Nope", { "content-type": "application/grpc", te: "trailers" }, frame(new Uint8Array()));
  t.same(grpcStatus(answer), { status: "12", message: "unknown service or method /etcdserverpb.KV/Nope" }, "raw gRPC: status 12 naming the path");
});

t.test("undecodable bodies are InvalidArgument and the connection keeps serving", async (t) => {
  const session = http2.connect(edge.url);
  t.teardown(() => session.close());
  // A field tag with wire type 7 (invalid), then a length that runs past the end: not a RangeRequest.
  const garbage = Uint8Array.from([0x0f, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x0a, 0x7f, 0x01]);

  const grpc = await raw(session, "/etcdserverpb.KV/Range", { "content-type": "application/grpc", te: "trailers" }, frame(garbage));
  const gs = grpcStatus(grpc);
  t.equal(gs.status, "3", `gRPC garbage → InvalidArgument (${gs.message})`);
  t.not(gs.message, "", "with a message");

  const web = await raw(session, "/etcdserverpb.KV/Range", { "content-type": "application/grpc-web+proto" }, frame(garbage));
  const ws = grpcWebStatus(web);
  t.equal(ws.status, "3", `gRPC-Web garbage → InvalidArgument (${ws.message})`);
  t.not(ws.message, "", "with a message");

  const cbin = await raw(session, "/etcdserverpb.KV/Range", { "content-type": "application/proto", "connect-protocol-version": "1" }, garbage);
  t.equal(cbin.headers[":status"], 400, "Connect proto garbage → HTTP 400");
  const cbinErr = JSON.parse(cbin.body.toString()) as { code: string; message: string };
  t.equal(cbinErr.code, "invalid_argument", `Connect proto garbage → invalid_argument (${cbinErr.message})`);
  t.not(cbinErr.message ?? "", "", "with a message");

  const cjson = await raw(session, "/etcdserverpb.KV/Range", { "content-type": "application/json", "connect-protocol-version": "1" }, enc('{"key": "a2V5", oops'));
  t.equal(cjson.headers[":status"], 400, "Connect bad JSON → HTTP 400");
  const cjsonErr = JSON.parse(cjson.body.toString()) as { code: string; message: string };
  t.equal(cjsonErr.code, "invalid_argument", `Connect bad JSON → invalid_argument (${cjsonErr.message})`);
  t.not(cjsonErr.message ?? "", "", "with a message");

  // A JSON value of the wrong type for a field is bad input too, not a crash.
  const wrongType = await raw(session, "/etcdserverpb.KV/Range", { "content-type": "application/json", "connect-protocol-version": "1" }, enc('{"key": 12, "limit": "many"}'));
  t.equal(wrongType.headers[":status"], 400, "Connect JSON of the wrong type → HTTP 400");

  // A gRPC frame that announces more bytes than the body has.
  const truncated = await raw(session, "/etcdserverpb.KV/Range", { "content-type": "application/grpc", te: "trailers" }, frame(rangeBytes()).subarray(0, 8));
  const ts = grpcStatus(truncated);
  t.ok(ts.status !== undefined && ts.status !== "0", `a truncated gRPC frame fails (${ts.status}: ${ts.message})`);

  // Mid-stream: a good Watch create, then garbage. The watch answered first; the garbage ends the call.
  const watchCreate = frame(toBinary(WatchRequestSchema, create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: enc("bad-input-watch") } } })));
  const midGrpc = await raw(session, "/etcdserverpb.Watch/Watch", { "content-type": "application/grpc", te: "trailers" }, Buffer.concat([watchCreate, frame(garbage)]));
  t.equal(grpcStatus(midGrpc).status, "3", `gRPC Watch with garbage mid-stream → InvalidArgument (${grpcStatus(midGrpc).message})`);
  const keepAliveGarbage = await raw(session, "/etcdserverpb.Lease/LeaseKeepAlive", { "content-type": "application/grpc", te: "trailers" }, frame(garbage));
  t.equal(grpcStatus(keepAliveGarbage).status, "3", `gRPC LeaseKeepAlive with garbage → InvalidArgument (${grpcStatus(keepAliveGarbage).message})`);
  const midWeb = await raw(session, "/etcdserverpb.Watch/Watch", { "content-type": "application/grpc-web+proto" }, Buffer.concat([watchCreate, frame(garbage)]));
  t.equal(grpcWebStatus(midWeb).status, "3", `gRPC-Web Watch with garbage mid-stream → InvalidArgument (${grpcWebStatus(midWeb).message})`);
  const midConnect = await raw(session, "/etcdserverpb.Watch/Watch", { "content-type": "application/connect+proto" }, Buffer.concat([watchCreate, frame(garbage)]));
  t.match(connectEndStream(midConnect), { error: { code: "invalid_argument", message: /parse/ } }, "Connect Watch with garbage mid-stream → invalid_argument");

  const good = await raw(session, "/etcdserverpb.KV/Range", { "content-type": "application/grpc", te: "trailers" }, frame(rangeBytes()));
  t.equal(grpcStatus(good).status, "0", "the same HTTP/2 connection still serves a good call");
  t.equal(session.destroyed, false, "and was never closed");

  // HTTP/1.1 keep-alive: the bad request and the next one share a socket.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const post = (body: string) => new Promise<{ status: number; body: string; reused: boolean }>((resolve, reject) => {
    const req = http.request(`${edge.url}/etcdserverpb.KV/Range`, { method: "POST", agent, headers: { "content-type": "application/json", "connect-protocol-version": "1" } }, (res) => {
      let b = "";
      res.on("data", (d: Buffer) => { b += d.toString(); });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: b, reused: req.reusedSocket }));
    });
    req.on("error", reject);
    req.end(body);
  });
  const bad1 = await post("{not json");
  t.equal(bad1.status, 400, "HTTP/1.1 bad JSON → 400");
  t.match(bad1.body, /"code":"invalid_argument"/);
  const good1 = await post(JSON.stringify({ key: Buffer.from("k").toString("base64") }));
  t.equal(good1.status, 200, `HTTP/1.1 good call after it → 200 (${good1.body})`);
  t.equal(good1.reused, true, "on the same keep-alive socket");

  // Other clients were never affected.
  t.ok((await clientFor(KV, "grpc", edge.url).range({ key: enc("k") })).header, "a fresh client works");
});

t.test("a request larger than --max-send-bytes is ResourceExhausted naming the limit", async (t) => {
  const small = await startEdge(t, [`--endpoints=${etcd.endpoint}`, "--max-send-bytes=1024"]);
  const big = new Uint8Array(4096).fill(0x61);
  for (const protocol of PROTOCOLS) {
    for (const httpVersion of protocol === "grpc" ? (["2"] as const) : (["2", "1.1"] as const)) {
      const kv = clientFor(KV, protocol, small.url, httpVersion);
      const err = await rejection(kv.put({ key: enc("too-big"), value: big }));
      t.equal(err.code, Code.ResourceExhausted, `${protocol} over HTTP/${httpVersion}: code (${err.rawMessage})`);
      t.match(err.rawMessage, /1024/, `${protocol} over HTTP/${httpVersion}: the message names the limit`);
      const ok = await kv.put({ key: enc("small-enough"), value: enc("fine") });
      t.ok(ok.header, `${protocol} over HTTP/${httpVersion}: a small Put afterwards works`);
    }
  }
  const direct = clientFor(KV, "grpc", etcd.url);
  t.equal((await direct.range({ key: enc("too-big"), countOnly: true })).count, 0n, "nothing too big reached etcd");
  t.equal(small.process.exitCode, null, "the proxy is still running");
});

t.test("with etcd stopped, a Range with a 2 s deadline fails Unavailable or DeadlineExceeded", async (t) => {
  const doomed = await startEtcd(t);
  const lonely = await startEdge(t, [`--endpoints=${doomed.endpoint}`]);
  t.ok((await clientFor(KV, "grpc", lonely.url).range({ key: enc("k") })).header, "works while etcd runs");
  await doomed.stop();
  for (const protocol of PROTOCOLS) {
    const kv = clientFor(KV, protocol, lonely.url);
    const started = Date.now();
    const err = await rejection(kv.range({ key: enc("k") }, { timeoutMs: 2000 }));
    const took = Date.now() - started;
    t.ok(err.code === Code.Unavailable || err.code === Code.DeadlineExceeded, `${protocol}: ${Code[err.code]} ${err.rawMessage}`);
    // Not a timing assertion: only that the call ended at all, long before anyone would call it a hang.
    t.ok(took < 10_000, `${protocol}: the call ended (after ${took} ms)`);
  }
  t.equal(lonely.process.exitCode, null, "the proxy is still running");
});

t.test("with etcd frozen (SIGSTOP), a Range with a 2 s deadline fails DeadlineExceeded and the proxy recovers", async (t) => {
  const frozen = await startEtcd(t);
  const edge2 = await startEdge(t, [`--endpoints=${frozen.endpoint}`]);
  const kv = (p: (typeof PROTOCOLS)[number], httpVersion: "2" | "1.1" = "2") => clientFor(KV, p, edge2.url, httpVersion);
  t.ok((await kv("grpc").range({ key: enc("k") })).header, "works while etcd runs");
  // The connection stays open and nothing answers: only the caller's deadline can end the call.
  frozen.process.kill("SIGSTOP");
  t.teardown(() => { frozen.process.kill("SIGCONT"); });
  const variants = PROTOCOLS.flatMap((protocol) => (protocol === "grpc" ? ["2" as const] : ["2" as const, "1.1" as const]).map((httpVersion) => ({ protocol, httpVersion })));
  const calls = variants.map(async ({ protocol, httpVersion }) => {
    const started = Date.now();
    const err = await rejection(kv(protocol, httpVersion).range({ key: enc("k") }, { timeoutMs: 2000 }));
    return { name: `${protocol} over HTTP/${httpVersion}`, err, took: Date.now() - started };
  });
  for (const { name, err, took } of await Promise.all(calls)) {
    t.ok(err.code === Code.DeadlineExceeded || err.code === Code.Unavailable, `${name}: ${Code[err.code]} ${err.rawMessage}`);
    t.ok(took < 10_000, `${name}: the call ended (after ${took} ms)`);
  }
  // The proxy ended its side too (deadline or cancel reached its handler), while etcd is still frozen.
  await waitFor(`${variants.length} failed Ranges counted by the proxy`, async () => (await failedRanges(edge2.url)) >= variants.length);
  t.pass("the proxy's handlers ended while etcd was still frozen");
  frozen.process.kill("SIGCONT");
  await waitFor("the proxy answers again after etcd resumes", async () => Boolean((await kv("grpc").range({ key: enc("k") }, { timeoutMs: 2000 })).header));
  t.pass("the proxy answers again after etcd resumes");
});

/** Range calls the proxy finished with an error, from its grpc_server_handled_total. */
async function failedRanges(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text.split("\n")
    .filter((l) => l.startsWith("grpc_server_handled_total{") && l.includes('grpc_method="Range"') && !l.includes('grpc_code="OK"'))
    .reduce((n, l) => n + Number(l.split(" ").pop()), 0);
}

/** etcd_edge_upstream_streams from the proxy's /metrics. */
async function upstreamStreams(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^etcd_edge_upstream_streams (\d+)/m.exec(text);
  if (!m) throw new Error("etcd_edge_upstream_streams missing from /metrics");
  return Number(m[1]);
}

/** A gauge of the proxy's /metrics. */
async function proxyGauge(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)`, "m").exec(text);
  if (!m) throw new Error(`${name} missing from /metrics`);
  return Number(m[1]);
}

/** Streams of `method` open on etcd itself: started minus handled, from etcd's own /metrics. */
async function etcdOpenStreams(method: string): Promise<number> {
  const text = await (await fetch(`${etcd.url}/metrics`)).text();
  const sum = (name: string) => text.split("\n")
    .filter((l) => l.startsWith(name) && l.includes(`grpc_method="${method}"`))
    .reduce((n, l) => n + Number(l.split(" ").pop()), 0);
  return sum("grpc_server_started_total") - sum("grpc_server_handled_total");
}

t.test("clients that go away mid-Watch leave no upstream stream behind", async (t) => {
  const baseline = await upstreamStreams(edge.url);
  const etcdBaseline = await etcdOpenStreams("Watch");
  const watchersBaseline = await proxyGauge(edge.url, "etcd_edge_upstream_watchers");
  const etcdWatchersBaseline = await settledEtcdWatchers(etcd.url);
  const aborts: AbortController[] = [];
  // 16 watches over every protocol, cancelled by their client (RST_STREAM / closed request) ...
  for (let i = 0; i < 16; i++) {
    const protocol = PROTOCOLS[i % PROTOCOLS.length]!;
    const watch = clientFor(Watch, protocol, edge.url);
    const abort = new AbortController();
    aborts.push(abort);
    const requests = new AsyncQueue<WatchRequest>();
    requests.push(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: enc(`leak/${i}`) } } }));
    const responses = watch.watch(requests, { signal: abort.signal })[Symbol.asyncIterator]();
    t.equal((await nextWithin(responses, `created of watch ${i}`)).created, true, `watch ${i} (${protocol}) created`);
  }
  // ... and 4 on a raw HTTP/2 connection that is then torn down without a word.
  const session = http2.connect(edge.url);
  for (let i = 0; i < 4; i++) {
    const stream = session.request({ ":method": "POST", ":path": "/etcdserverpb.Watch/Watch", "content-type": "application/grpc", te: "trailers" });
    stream.write(frame(toBinary(WatchRequestSchema, create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: enc(`leak/raw/${i}`) } } }))));
    await new Promise<void>((resolve, reject) => {
      stream.once("data", () => resolve());
      stream.once("error", reject);
    });
  }
  // 20 watches on 20 keys: 20 upstream watches, carried on one shared upstream stream (watch-hub.ts).
  t.equal(await proxyGauge(edge.url, "etcd_edge_upstream_watchers"), watchersBaseline + 20, "20 upstream watches while the watches run");
  t.equal(await etcdWatchers(etcd.url), etcdWatchersBaseline + 20, "etcd sees 20 more watchers");
  t.ok(await upstreamStreams(edge.url) <= baseline + 1, "on at most one new upstream stream");

  for (const a of aborts) a.abort();
  session.destroy();
  await waitFor("etcd_edge_upstream_watchers back to its baseline", async () => (await proxyGauge(edge.url, "etcd_edge_upstream_watchers")) === watchersBaseline);
  await waitFor("etcd_edge_upstream_streams back to its baseline", async () => (await upstreamStreams(edge.url)) === baseline);
  t.pass("the proxy released every upstream watch and stream");
  await waitFor("etcd's watchers back to the baseline", async () => (await etcdWatchers(etcd.url)) === etcdWatchersBaseline);
  await waitFor("etcd's Watch streams back to the baseline", async () => (await etcdOpenStreams("Watch")) === etcdBaseline);
  t.pass("etcd saw every watcher and stream end");
});

t.test("a Snapshot the client aborts halfway releases its upstream stream", async (t) => {
  // About 1.5 MB of data, so that the snapshot takes many chunks (etcd sends 32 KiB at a time).
  const direct = clientFor(KV, "grpc", etcd.url);
  const blob = new Uint8Array(32 * 1024).fill(0x62);
  for (let i = 0; i < 48; i++) await direct.put({ key: enc(`snap/${i}`), value: blob });
  const baseline = await upstreamStreams(edge.url);
  const etcdBaseline = await etcdOpenStreams("Snapshot");
  for (const protocol of PROTOCOLS) {
    const maintenance = clientFor(Maintenance, protocol, edge.url);
    const abort = new AbortController();
    const chunks = maintenance.snapshot({}, { signal: abort.signal })[Symbol.asyncIterator]();
    const first = await nextWithin(chunks, "the first snapshot chunk");
    t.ok(first.remainingBytes > 0n, `${protocol}: more chunks were to come (${first.remainingBytes} bytes left)`);
    t.equal(await upstreamStreams(edge.url), baseline + 1, `${protocol}: one upstream stream while it runs`);
    abort.abort();
    await chunks.return?.();
    await waitFor(`${protocol}: etcd_edge_upstream_streams back to its baseline`, async () => (await upstreamStreams(edge.url)) === baseline);
    t.pass(`${protocol}: the proxy released the upstream stream`);
  }
  await waitFor("etcd's Snapshot streams back to the baseline", async () => (await etcdOpenStreams("Snapshot")) === etcdBaseline);
  t.pass("etcd saw every snapshot stream end");
  t.ok((await clientFor(KV, "grpc", edge.url).range({ key: enc("snap/0"), countOnly: true })).count === 1n, "the proxy still serves");
});
