/**
 * Lease keep-alive N→1 against a real etcd: many client streams are one LeaseKeepAlive stream at etcd,
 * replies are etcd's own (TTL 0 for an unknown lease), and a lease dies on time once its client stops.
 */
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import t from "tap";
import { Lease, LeaseKeepAliveRequestSchema, type LeaseKeepAliveRequest, type LeaseKeepAliveResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { sleep, waitFor } from "../helpers/ports.js";
import { metric, openStreams } from "../helpers/prom.js";
import { startEdge } from "../helpers/proxy.js";
import { AsyncQueue, nextWithin } from "../helpers/streams.js";

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
const direct = clientFor(Lease, "grpc", etcd.url);

interface KeepAliveStream {
  send(id: bigint): void;
  next(what: string): Promise<LeaseKeepAliveResponse>;
  halfClose(): void;
  cancel(): void;
  rest(): AsyncIterator<LeaseKeepAliveResponse>;
}

function keepAliveStream(client: Client<typeof Lease>): KeepAliveStream {
  const requests = new AsyncQueue<LeaseKeepAliveRequest>();
  const abort = new AbortController();
  const it = client.leaseKeepAlive(requests, { signal: abort.signal })[Symbol.asyncIterator]();
  return {
    send: (id) => requests.push(create(LeaseKeepAliveRequestSchema, { ID: id })),
    next: (what) => nextWithin(it, what),
    halfClose: () => requests.end(),
    cancel: () => abort.abort(),
    rest: () => it,
  };
}

t.test("1,000 keep-alive streams through the proxy are 1 LeaseKeepAlive stream at etcd", async (t) => {
  const { ID } = await direct.leaseGrant({ TTL: 60n });
  t.equal(await openStreams(etcd.url, "LeaseKeepAlive"), 0, "etcd has no keep-alive stream yet");
  // 10 client connections, 100 streams on each.
  const clients = Array.from({ length: 10 }, () => clientFor(Lease, "grpc", edge.url));
  const streams = Array.from({ length: 1000 }, (_, i) => keepAliveStream(clients[i % clients.length]!));
  for (const s of streams) s.send(ID);
  const first = await Promise.all(streams.map((s, i) => s.next(`first reply on stream ${i}`)));
  t.ok(first.every((r) => r.ID === ID && r.TTL === 60n), "every stream got etcd's reply for its lease");
  t.equal(await metric(edge.url, "etcd_edge_lease_keepalive_client_streams"), 1000, "the proxy holds 1,000 client streams");
  t.equal(await openStreams(etcd.url, "LeaseKeepAlive"), 1, "etcd sees one stream");
  t.equal(await metric(edge.url, "etcd_edge_lease_keepalive_upstream_streams"), 1);
  // A second round: each stream asks again and each gets one more reply.
  for (const s of streams) s.send(ID);
  const second = await Promise.all(streams.map((s, i) => s.next(`second reply on stream ${i}`)));
  t.equal(second.length, 1000);
  t.ok(second.every((r) => r.TTL === 60n));
  t.equal(await openStreams(etcd.url, "LeaseKeepAlive"), 1, "still one");
  for (const s of streams) s.cancel();
  await waitFor("the upstream keep-alive stream to close once no client is left", async () => await openStreams(etcd.url, "LeaseKeepAlive") === 0);
  t.equal(await metric(edge.url, "etcd_edge_lease_keepalive_client_streams"), 0);
});

t.test("an unknown lease gets TTL 0, exactly as etcd answers it", async (t) => {
  const viaProxy = keepAliveStream(clientFor(Lease, "grpc", edge.url));
  const viaEtcd = keepAliveStream(direct);
  viaProxy.send(0x1234n);
  viaEtcd.send(0x1234n);
  const [p, e] = [await viaProxy.next("proxy reply"), await viaEtcd.next("etcd reply")];
  t.equal(p.TTL, 0n);
  t.equal(p.TTL, e.TTL);
  t.equal(p.ID, e.ID);
  t.equal(p.header?.clusterId, e.header?.clusterId);
  t.equal(p.header?.memberId, e.header?.memberId);
  // A revoked lease: the same.
  const { ID } = await direct.leaseGrant({ TTL: 30n });
  await direct.leaseRevoke({ ID });
  viaProxy.send(ID);
  t.equal((await viaProxy.next("reply for a revoked lease")).TTL, 0n);
  viaProxy.cancel();
  viaEtcd.cancel();
});

t.test("half-close: pending keep-alives are answered, then the stream ends OK, as on etcd", async (t) => {
  const { ID } = await direct.leaseGrant({ TTL: 30n });
  for (const [name, client] of [["etcd", direct], ["proxy", clientFor(Lease, "grpc", edge.url)]] as const) {
    const s = keepAliveStream(client);
    s.send(ID);
    s.send(ID);
    s.halfClose();
    const replies: LeaseKeepAliveResponse[] = [];
    const it = s.rest();
    for (let r = await it.next(); !r.done; r = await it.next()) replies.push(r.value);
    t.equal(replies.length, 2, `${name}: two replies, then a clean end`);
    t.ok(replies.every((r) => r.TTL === 30n));
  }
});

t.test("a lease expires on time once its client stops (TTL after the last keep-alive, +1 s)", async (t) => {
  const ttl = 3;
  const { ID } = await direct.leaseGrant({ TTL: BigInt(ttl) });
  const s = keepAliveStream(clientFor(Lease, "grpc", edge.url));
  let lastReplyAt = 0;
  for (let i = 0; i < 3; i++) {
    s.send(ID);
    const r = await s.next(`keep-alive ${i}`);
    lastReplyAt = Date.now();
    t.equal(r.TTL, BigInt(ttl));
    await sleep(1000);
  }
  s.cancel();
  t.ok((await direct.leaseTimeToLive({ ID })).TTL > 0n, "alive right after the client stopped");
  await waitFor("the lease to expire", async () => (await direct.leaseTimeToLive({ ID })).TTL === -1n, 15_000);
  const lived = Date.now() - lastReplyAt;
  t.ok(lived <= (ttl + 1) * 1000, `expired ${lived} ms after the last keep-alive (TTL ${ttl} s; etcd's proxy: about 2x TTL)`);
});

t.test("etcdctl lease keep-alive through the proxy behaves as against etcd", async (t) => {
  const { ID } = await direct.leaseGrant({ TTL: 20n });
  const hex = ID.toString(16).padStart(16, "0");
  for (const args of [["lease", "keep-alive", "--once", hex], ["lease", "keep-alive", "--once", "1234"]]) {
    const [viaEtcd, viaProxy] = [await etcdctl(etcd.endpoint, args), await etcdctl(edge.addr, args)];
    t.equal(viaProxy.code, viaEtcd.code, `exit code of etcdctl ${args.join(" ")}`);
    t.equal(viaProxy.stdout, viaEtcd.stdout, `stdout of etcdctl ${args.join(" ")}`);
  }
  // The long-running form: killed after a while; it printed the same lines, one per renewal.
  const [viaEtcd, viaProxy] = await Promise.all([
    etcdctl(etcd.endpoint, ["lease", "keep-alive", hex], { timeoutMs: 1500 }),
    etcdctl(edge.addr, ["lease", "keep-alive", hex], { timeoutMs: 1500 }),
  ]);
  const firstLine = (s: string) => s.split("\n")[0];
  t.equal(firstLine(viaProxy.stdout), `lease ${hex} keepalived with TTL(20)`);
  t.equal(firstLine(viaProxy.stdout), firstLine(viaEtcd.stdout));
});
