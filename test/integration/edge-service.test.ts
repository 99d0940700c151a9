/**
 * etcdedge.v1.Edge, the browser forms of etcd's bidi RPCs, over every protocol: the server-streaming Watch
 * delivers etcd's responses (created first, then live events, canceled last when etcd ends the watch),
 * and its upstream watch goes away with the client; the unary LeaseKeepAlive renews a lease or answers
 * NotFound with etcd's message.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import t from "tap";
import { Edge } from "../../gen/etcdedge/v1/edge_pb.js";
import { KV, Lease } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, dec, enc, PROTOCOLS, type ProtocolName } from "../helpers/clients.js";
import { startEtcd, type Etcd } from "../helpers/etcd.js";
import { waitFor } from "../helpers/ports.js";
import { startEdge } from "../helpers/proxy.js";
import { nextWithin } from "../helpers/streams.js";
import { etcdWatchers, settledEtcdWatchers } from "../helpers/watch-session.js";

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
const direct = { kv: clientFor(KV, "grpc", etcd.url), lease: clientFor(Lease, "grpc", etcd.url) };

const VARIANTS: { protocol: ProtocolName; httpVersion: "1.1" | "2" }[] = [
  ...PROTOCOLS.map((protocol) => ({ protocol, httpVersion: "2" as const })),
  // The browser's case: server streams and unary calls over HTTP/1.1 (fetch on a cleartext origin).
  ...PROTOCOLS.filter((p) => p !== "grpc").map((protocol) => ({ protocol, httpVersion: "1.1" as const })),
];

for (const { protocol, httpVersion } of VARIANTS) {
  const name = `${protocol} over HTTP/${httpVersion}`;
  const client = clientFor(Edge, protocol, edge.url, httpVersion);
  const prefix = `edge/${protocol}-${httpVersion}/`;

  t.test(`${name}: Watch sends created, then live events; the upstream watch ends with the client`, async (t) => {
    const before = await settledEtcdWatchers(etcd.url);
    const abort = new AbortController();
    t.teardown(() => abort.abort());
    const stream = client.watch({ key: enc(prefix), rangeEnd: enc(prefix.slice(0, -1) + "0"), prevKv: true }, { signal: abort.signal })[Symbol.asyncIterator]();
    const created = await nextWithin(stream, "the created response");
    t.equal(created.created, true, "the first response says created");
    t.equal(created.events.length, 0);
    await direct.kv.put({ key: enc(prefix + "a"), value: enc("1") });
    await direct.kv.put({ key: enc(prefix + "a"), value: enc("2") });
    await direct.kv.put({ key: enc("elsewhere"), value: enc("not watched") });
    const events = [];
    while (events.length < 2) events.push(...(await nextWithin(stream, "the two events")).events);
    t.same(events.map((e) => dec(e.kv!.value)), ["1", "2"], "both puts, in order");
    t.equal(dec(events[1]!.prevKv!.value), "1", "prev_kv as asked");
    t.equal(await etcdWatchers(etcd.url), before + 1, "one watcher on etcd while the client watches");
    abort.abort();
    await waitFor("etcd's watcher to go with the client", async () => (await etcdWatchers(etcd.url)) === before);
  });

  t.test(`${name}: LeaseKeepAlive renews, or answers NotFound as etcd words it`, async (t) => {
    const granted = await direct.lease.leaseGrant({ TTL: 60n });
    t.teardown(() => direct.lease.leaseRevoke({ ID: granted.ID }).catch(() => {}));
    const res = await client.leaseKeepAlive({ ID: granted.ID });
    t.equal(res.ID, granted.ID, "the same lease");
    t.ok(res.TTL > 50n && res.TTL <= 60n, `TTL renewed to the granted 60 s (got ${res.TTL})`);
    t.ok(res.header && res.header.revision > 0n, "etcd's header");
    try {
      await client.leaseKeepAlive({ ID: 0x7777n });
      t.fail("keep-alive of an unknown lease succeeded");
    } catch (err) {
      const ce = ConnectError.from(err);
      t.equal(ce.code, Code.NotFound);
      t.equal(ce.rawMessage, "etcdserver: requested lease not found");
    }
  });
}

t.test("Watch from a compacted revision: canceled with compact_revision, then the stream ends", async (t) => {
  const client = clientFor(Edge, "connect-json", edge.url, "1.1");
  const key = enc("edge/compacted");
  const first = await direct.kv.put({ key, value: enc("old") });
  const latest = await direct.kv.put({ key, value: enc("new") });
  await direct.kv.compact({ revision: latest.header!.revision, physical: true });
  const responses = [];
  for await (const res of client.watch({ key, startRevision: first.header!.revision })) responses.push(res);
  const last = responses.at(-1)!;
  t.equal(last.canceled, true, "the last response says canceled");
  t.equal(last.compactRevision, latest.header!.revision, "with etcd's compact_revision");
  t.ok(responses.length <= 2, "nothing after the cancel");
});
