/**
 * The watch cache across upstream failures, on a real etcd reached through a TCP forwarder the test cuts:
 * - while the connection is down the cache is off at once (nothing stale is served: reads go to etcd);
 *   back, it watches again from its own revision (no new snapshot), and a watcher it fed has every event
 *   of the outage exactly once and in order;
 * - if etcd compacted past the cache's revision meanwhile, the cache takes a new snapshot, and a watcher
 *   it fed that is now behind the compaction gets etcd's own compaction cancel;
 * - if another cluster answers at the same address (a restore, a new cluster), a new snapshot too.
 */
import { toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import t from "tap";
import { KV, RangeResponseSchema, Watch } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, dec, enc, rejection } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { waitFor } from "../helpers/ports.js";
import { metric } from "../helpers/prom.js";
import { startEdge } from "../helpers/proxy.js";
import { startForwarder } from "../helpers/tcp-forwarder.js";
import { WatchSession } from "../helpers/watch-session.js";

const etcd = await startEtcd(t);
const [host, port] = etcd.endpoint.split(":") as [string, string];
const root = t; // forwarders live until the file ends, not until the subtest that made them does
let fwd = await startForwarder(root, { host, port: Number(port) });
const edge = await startEdge(t, [`--endpoints=${fwd.addr}`, "--watch-cache-prefix=/f/"]);
const direct = createClient(KV, createGrpcTransport({ baseUrl: etcd.url }));
const viaEdge = clientFor(KV, "grpc", edge.url);
const gauge = (name: string) => metric(edge.url, name);
const prefix = { key: enc("/f/"), rangeEnd: enc("/f0") };
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

async function head(): Promise<bigint> {
  return (await direct.range({ key: enc("x") })).header!.revision;
}
/** Every event of /f/ from `from` on, as etcd itself tells it. */
async function etcdEvents(from: bigint, until: bigint): Promise<string[]> {
  const s = new WatchSession(createClient(Watch, createGrpcTransport({ baseUrl: etcd.url })));
  try {
    await s.createAndWait({ ...prefix, startRevision: from });
    await s.until("etcd's history", () => s.events(0n).some((e) => e.kv!.modRevision >= until));
    return s.events(0n).map(show);
  } finally {
    s.close();
  }
}
const show = (e: { type: number; kv?: { key: Uint8Array; value: Uint8Array; modRevision: bigint } }) => `${e.type} ${dec(e.kv!.key)}=${dec(e.kv!.value)}@${e.kv!.modRevision}`;

await waitFor("the cache to be ready", async () => (await gauge("etcd_edge_watch_cache_ready")) === 1);
for (let i = 0; i < 10; i++) await direct.put({ key: enc(`/f/k${i}`), value: enc(`v${i}`) });

t.test("a broken connection: off at once, then back from its own revision with nothing lost or repeated", async (t) => {
  const start = (await head()) - 5n;
  const w = new WatchSession(clientFor(Watch, "grpc", edge.url));
  t.teardown(() => w.close());
  await w.createAndWait({ ...prefix, startRevision: start });
  await w.until("the replay", () => w.events(0n).length === 6);
  t.equal(await gauge("etcd_edge_watch_cache_served_total"), 1, "the watcher is fed by the cache");
  const snapshots = await gauge("etcd_edge_watch_cache_resyncs_total");

  await fwd.close();
  await waitFor("the cache to go off", async () => (await gauge("etcd_edge_watch_cache_ready")) === 0, 10_000);
  t.equal((await rejection(viaEdge.range(prefix))).code !== undefined, true, "a read while etcd is unreachable fails (etcd answers, not the cache)");
  for (let i = 0; i < 5; i++) await direct.put({ key: enc(`/f/k${i}`), value: enc(`outage-${i}`) });
  await direct.deleteRange({ key: enc("/f/k9") });
  const last = await head();

  fwd = await startForwarder(root, { host, port: Number(port) }, fwd.port);
  await waitFor("the cache to be back", async () => (await gauge("etcd_edge_watch_cache_ready")) === 1, 20_000);
  t.equal(await gauge("etcd_edge_watch_cache_resyncs_total"), snapshots, "no new snapshot: it watched again from its revision");
  t.ok((await gauge("etcd_edge_watch_cache_reconnects_total")) >= 1, "the upstream watch was made again");
  await waitFor("the list to be etcd's", async () => hex(toBinary(RangeResponseSchema, await viaEdge.range(prefix))) === hex(toBinary(RangeResponseSchema, await direct.range(prefix))), 10_000);
  await w.until("the watcher to see the outage", () => w.events(0n).some((e) => e.kv!.modRevision >= last), 20_000);
  t.same(w.events(0n).map(show), await etcdEvents(start, last), "the watcher saw every event once, in order");
});

t.test("etcd compacted past the cache meanwhile: a new snapshot, and etcd's compaction cancel for a watcher behind it", async (t) => {
  const w = new WatchSession(clientFor(Watch, "grpc", edge.url));
  t.teardown(() => w.close());
  const start = await head();
  await w.createAndWait({ ...prefix, startRevision: start });
  const snapshots = await gauge("etcd_edge_watch_cache_resyncs_total");

  await fwd.close();
  await waitFor("the cache to go off", async () => (await gauge("etcd_edge_watch_cache_ready")) === 0, 10_000);
  for (let i = 0; i < 5; i++) await direct.put({ key: enc(`/f/k${i}`), value: enc(`after-${i}`) });
  const compacted = await head();
  await direct.compact({ revision: compacted });

  fwd = await startForwarder(root, { host, port: Number(port) }, fwd.port);
  await waitFor("the cache to be back", async () => (await gauge("etcd_edge_watch_cache_ready")) === 1, 20_000);
  t.equal(await gauge("etcd_edge_watch_cache_resyncs_total"), snapshots + 1, "a new snapshot, before it was back");
  await waitFor("the list to be etcd's", async () => hex(toBinary(RangeResponseSchema, await viaEdge.range(prefix))) === hex(toBinary(RangeResponseSchema, await direct.range(prefix))), 10_000);
  const old = await rejection(viaEdge.range({ ...prefix, revision: compacted - 1n }));
  t.equal(old.rawMessage, "etcdserver: mvcc: required revision has been compacted", "a read below the compaction: etcd's error");
  await w.until("etcd's compaction cancel", () => w.of(0n).some((r) => r.canceled), 20_000);
  const cancel = w.of(0n).find((r) => r.canceled)!;
  t.equal(cancel.compactRevision, compacted, "canceled with etcd's compact_revision");
});

t.test("etcd replaced by another cluster at the same address (a restore, a new cluster): a new snapshot, never the old keys", async (t) => {
  const other = await startEtcd(t);
  const otherKv = createClient(KV, createGrpcTransport({ baseUrl: other.url }));
  // The new cluster's history is shorter than what the cache holds: its revisions would read as "ahead".
  await otherKv.put({ key: enc("/f/k0"), value: enc("from the other cluster") });
  const snapshots = await gauge("etcd_edge_watch_cache_resyncs_total");
  await fwd.close();
  await waitFor("the cache to go off", async () => (await gauge("etcd_edge_watch_cache_ready")) === 0, 10_000);
  const [otherHost, otherPort] = other.endpoint.split(":") as [string, string];
  fwd = await startForwarder(root, { host: otherHost, port: Number(otherPort) }, fwd.port);
  await waitFor("the cache to be back", async () => (await gauge("etcd_edge_watch_cache_ready")) === 1, 20_000);
  t.equal(await gauge("etcd_edge_watch_cache_resyncs_total"), snapshots + 1, "a new snapshot");
  await waitFor("the list to be the other cluster's", async () => hex(toBinary(RangeResponseSchema, await viaEdge.range({ ...prefix, serializable: true }))) === hex(toBinary(RangeResponseSchema, await otherKv.range({ ...prefix, serializable: true }))), 10_000);
  const got = await viaEdge.range(prefix);
  t.same(got.kvs.map((kv) => `${dec(kv.key)}=${dec(kv.value)}`), ["/f/k0=from the other cluster"], "only the other cluster's keys");
});
