/**
 * SIGTERM (src/main.ts, Proxy.close): the port stops accepting, open streams end with Unavailable (gRPC
 * status 14) in every protocol, a unary call in flight still completes, and the process exits 0 within the
 * grace period (SHUTDOWN_GRACE_MS, 5 s); a unary call that outlasts it is cut and the exit is still on time.
 * The slow unary call is a v3lock Lock waiting for a lock that a client of etcd itself holds.
 */
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import t from "tap";
import { Edge } from "../../gen/etcdedge/v1/edge_pb.js";
import { KV, Lease, Watch, WatchRequestSchema, type WatchRequest } from "../../gen/etcdserverpb/rpc_pb.js";
import { Lock } from "../../gen/v3lockpb/v3lock_pb.js";
import { clientFor, enc, rejection } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { grpcJsClient, unary } from "../helpers/grpc-js.js";
import { portOpen, waitFor } from "../helpers/ports.js";
import { startEdge, type EdgeProxy } from "../helpers/proxy.js";
import { AsyncQueue, nextWithin } from "../helpers/streams.js";

/** src/main.ts SHUTDOWN_GRACE_MS. */
const GRACE_MS = 5_000;

const etcd = await startEtcd(t);
const direct = { lease: clientFor(Lease, "grpc", etcd.url), lock: clientFor(Lock, "grpc", etcd.url), kv: clientFor(KV, "grpc", etcd.url) };

/** SIGTERM now; resolves with the exit code and how long the process took to exit. */
function terminate(edge: EdgeProxy): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  const exited = new Promise<{ code: number | null; ms: number }>((resolve) => {
    edge.process.once("exit", (code) => resolve({ code, ms: Date.now() - started }));
  });
  edge.process.kill("SIGTERM");
  return exited;
}

/**
 * Holds lock `name` at etcd directly, and starts a Lock of the same name through the proxy (with `call`),
 * which waits for the holder.
 */
async function waitingLock<T>(edge: EdgeProxy, name: string, call: (lease: bigint) => Promise<T>) {
  const holder = await direct.lease.leaseGrant({ TTL: 60n });
  await direct.lock.lock({ name: enc(name), lease: holder.ID });
  const waiter = await clientFor(Lease, "grpc", edge.url).leaseGrant({ TTL: 60n });
  const lock = call(waiter.ID);
  lock.catch(() => {});
  // Both lock keys exist once etcd has the proxied Lock: it is then in flight, waiting for the holder.
  await waitFor("the proxied Lock to reach etcd", async () => (await direct.kv.range({ key: enc(`${name}/`), rangeEnd: enc(`${name}0`), countOnly: true })).count === 2n);
  return { lock, release: () => direct.lease.leaseRevoke({ ID: holder.ID }) };
}

t.test("SIGTERM: streams end with Unavailable, a unary call in flight completes, exit 0 in time", async (t) => {
  const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
  const abort = new AbortController();
  t.teardown(() => abort.abort());
  // A native gRPC Watch (the fast bidi path) and a Connect server stream over HTTP/1.1 (connect-es's handlers).
  const requests = new AsyncQueue<WatchRequest>();
  const grpcWatch = clientFor(Watch, "grpc", edge.url).watch(requests, { signal: abort.signal })[Symbol.asyncIterator]();
  requests.push(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: enc("shutdown/w") } } }));
  t.equal((await nextWithin(grpcWatch, "gRPC Watch created")).created, true);
  const connectWatch = clientFor(Edge, "connect-json", edge.url, "1.1").watch({ key: enc("shutdown/w") }, { signal: abort.signal })[Symbol.asyncIterator]();
  t.equal((await nextWithin(connectWatch, "Connect Edge/Watch created")).created, true);
  const { lock, release } = await waitingLock(edge, "shutdown-lock", (lease) => clientFor(Lock, "grpc", edge.url).lock({ name: enc("shutdown-lock"), lease }));

  const exit = terminate(edge);
  const grpcEnd = await rejection(nextWithin(grpcWatch, "the gRPC Watch to end", 3_000));
  t.equal(grpcEnd.code, Code.Unavailable, `gRPC Watch: ${grpcEnd.message}`);
  t.match(grpcEnd.rawMessage, "etcd-edge is shutting down");
  const connectEnd = await rejection(nextWithin(connectWatch, "the Connect stream to end", 3_000));
  t.equal(connectEnd.code, Code.Unavailable, `Connect Edge/Watch: ${connectEnd.message}`);
  await waitFor("the port to stop accepting", async () => !(await portOpen(edge.port)), 3_000);
  t.pass("new connections are refused while the Lock call is still in flight");

  await release();
  const locked = await lock;
  t.match(Buffer.from(locked.key).toString(), /^shutdown-lock\//, "the Lock call in flight completed with its key");
  const { code, ms } = await exit;
  t.equal(code, 0, edge.output());
  t.ok(ms < GRACE_MS, `exited ${ms} ms after SIGTERM, once the call was done (grace ${GRACE_MS} ms)`);
  t.match(edge.output(), "SIGTERM, shutting down");
});

t.test("a unary call that outlasts the grace period is cut, and the process still exits 0 in time", async (t) => {
  const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
  // grpc-js, as the etcd3 package calls: a connection closed under a call is Unavailable to it.
  const client = grpcJsClient(t, edge.addr);
  const { lock, release } = await waitingLock(edge, "shutdown-stuck", (lease) => unary(client, Lock.method.lock, { name: enc("shutdown-stuck"), lease }, { timeoutMs: 60_000 }));
  t.teardown(release);
  const { code, ms } = await terminate(edge);
  t.equal(code, 0, edge.output());
  t.ok(ms >= GRACE_MS - 1_000, `it waited for the call (${ms} ms)`);
  t.ok(ms <= GRACE_MS + 200, `and exited within the grace period (${ms} ms)`);
  const outcome = await lock;
  t.equal(outcome.ok ? "ok" : outcome.err.code, 14, `the cut call fails Unavailable in grpc-js: ${JSON.stringify(outcome.ok ? "" : outcome.err.details)}`);
});
