/**
 * --fairness through the real proxy and a real etcd, with one seat and one queue of one call: a Lock on a
 * held lock takes the seat and waits inside etcd, a second one waits in the queue, so the queue is full.
 * Then every further charged call is answered at once, ResourceExhausted in gRPC, gRPC-Web and Connect
 * (compressed too: connect-es's handlers) and 429 with Retry-After on the JSON gateway, with a message naming the limit; exempt calls (Status,
 * /health, a range cache hit, lease keep-alives) still go through. Once the lock is released everything is
 * served again. Every caller here is one flow (addr:127.0.0.1; etcd refuses tokens while its auth is off).
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { compressionGzip, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import t from "tap";
import { KV, Lease, Maintenance } from "../../gen/etcdserverpb/rpc_pb.js";
import { Lock } from "../../gen/v3lockpb/v3lock_pb.js";
import { clientFor, enc, PROTOCOLS } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { startEdge } from "../helpers/proxy.js";

const etcd = await startEtcd(t);
const edge = await startEdge(t, [
  `--endpoints=${etcd.endpoint}`, "--fairness", "--fairness-seats=1", "--fairness-flow-seats=1",
  "--fairness-queues=1", "--fairness-hand-size=1", "--fairness-queue-length=1", "--fairness-max-wait=60s",
]);

const kv = clientFor(KV, "grpc", edge.url);
const lease = clientFor(Lease, "grpc", edge.url);
const lock = clientFor(Lock, "grpc", edge.url);

// Before the queue fills: a cached serializable read, and two leases (the holder's and the blocker's).
await kv.put({ key: enc("k"), value: enc("v") });
await kv.range({ key: enc("k"), serializable: true });
const holder = await lease.leaseGrant({ TTL: 60n });
const blockerLease = await lease.leaseGrant({ TTL: 60n });
await lock.lock({ name: enc("L"), lease: holder.ID });

const abort = new AbortController();
const blocker = lock.lock({ name: enc("L"), lease: blockerLease.ID }, { signal: abort.signal }).catch(() => undefined);
const queued = lock.lock({ name: enc("L"), lease: blockerLease.ID }, { signal: abort.signal }).catch(() => undefined);

/** Waits until /metrics shows the seat taken and one call queued (the queue full). */
async function untilFull(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const text = await (await fetch(`${edge.url}/metrics`)).text();
    if (/^etcd_edge_fairness_seats_in_use 1$/m.test(text) && /^etcd_edge_fairness_flow_queued\{flow="addr:127.0.0.1"\} 1$/m.test(text)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the queue never filled");
}
await untilFull();

t.test("a full queue answers at once with ResourceExhausted in gRPC, gRPC-Web and Connect", async (t) => {
  for (const protocol of PROTOCOLS) {
    const client = clientFor(KV, protocol, edge.url);
    const err = await client.range({ key: enc("k") }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    t.equal(err?.code, Code.ResourceExhausted, `${protocol}: ResourceExhausted`);
    t.match(err?.rawMessage, /--fairness-queue-length=1/, `${protocol}: the message names the limit`);
  }
});

t.test("so do compressed calls, which connect-es's handlers serve (no flow escapes by compressing)", async (t) => {
  const transports = {
    grpc: createGrpcTransport({ baseUrl: edge.url, sendCompression: compressionGzip, compressMinBytes: 0 }),
    connect: createConnectTransport({ baseUrl: edge.url, httpVersion: "2", sendCompression: compressionGzip, compressMinBytes: 0 }),
  };
  for (const [name, transport] of Object.entries(transports)) {
    const err = await createClient(KV, transport).range({ key: enc("k") }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    t.equal(err?.code, Code.ResourceExhausted, `${name} with gzip: ResourceExhausted`);
    t.match(err?.rawMessage, /--fairness-queue-length=1/);
  }
});

t.test("the JSON gateway answers 429 with Retry-After", async (t) => {
  const res = await fetch(`${edge.url}/v3/kv/range`, { method: "POST", body: JSON.stringify({ key: Buffer.from("k").toString("base64") }) });
  t.equal(res.status, 429);
  t.equal(res.headers.get("retry-after"), "1");
  const body = (await res.json()) as { code: number; message: string };
  t.equal(body.code, Code.ResourceExhausted);
  t.match(body.message, /--fairness-queue-length=1/);
});

t.test("exempt calls never queue: Status, /health, a range cache hit, lease keep-alives", async (t) => {
  const status = await clientFor(Maintenance, "grpc", edge.url).status({});
  t.ok(status.version, "Status answered");
  t.equal((await fetch(`${edge.url}/health`)).status, 200, "/health answered");
  const hit = await kv.range({ key: enc("k"), serializable: true });
  t.equal(hit.kvs.length, 1, "a cache hit answered");
  const ka = lease.leaseKeepAlive((async function* () { yield { ID: holder.ID }; })());
  for await (const res of ka) {
    t.equal(res.ID, holder.ID, "a keep-alive answered");
    t.ok(res.TTL > 0n);
    break;
  }
});

t.test("served again once the seat is free", async (t) => {
  abort.abort();
  await Promise.all([blocker, queued]);
  await lease.leaseRevoke({ ID: holder.ID });
  let res;
  for (let i = 0; i < 100 && !res; i++) {
    res = await kv.range({ key: enc("k") }).catch(() => undefined);
    if (!res) await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(res?.kvs.length, 1, "a linearizable Range is served");
});
