/**
 * The watch cache's snapshot against a scripted etcd (the upstream is a stub that answers Status, Range
 * pages and an idle Watch): pages of 5,000 keys pinned to the first page's revision, the store bound
 * (a prefix over it is not cached and the failure is logged once, not on every retry), and the watch
 * made from the snapshot's revision + 1 with prev_kv and progress_notify.
 */
import { create } from "@bufbuild/protobuf";
import t from "tap";
import { KeyValueSchema } from "../../gen/mvccpb/kv_pb.js";
import { RangeResponseSchema, type RangeRequest, type WatchRequest } from "../../gen/etcdserverpb/rpc_pb.js";
import type { Upstream } from "../../src/upstream/client/upstream.js";
import { WatchCache } from "../../src/upstream/cache/watch-cache.js";
import { waitFor } from "../helpers/ports.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** An etcd with `n` keys under /p/ at revision 100, whose watch answers created, then `events` responses. */
function fakeEtcd(n: number, valueBytes = 10, events: unknown[] = []) {
  const keys = Array.from({ length: n }, (_, i) => `/p/${String(i).padStart(6, "0")}`);
  const ranges: RangeRequest[] = [];
  const watches: WatchRequest[] = [];
  const clients = {
    maintenance: { status: async () => ({ version: "3.5.16" }) },
    kv: {
      range: async (req: RangeRequest) => {
        ranges.push(req);
        const from = keys.findIndex((k) => k >= dec(req.key));
        const page = (from < 0 ? [] : keys.slice(from)).slice(0, Number(req.limit));
        const more = from >= 0 && from + page.length < keys.length;
        return create(RangeResponseSchema, {
          header: { revision: 100n }, count: BigInt(keys.length), more,
          kvs: page.map((k) => create(KeyValueSchema, { key: enc(k), value: new Uint8Array(valueBytes), modRevision: 5n, createRevision: 5n, version: 1n })),
        });
      },
    },
    watch: {
      async *watch(requests: AsyncIterable<WatchRequest>) {
        for await (const r of requests) {
          watches.push(r);
          yield { created: true, canceled: false, events: [], watchId: 1n, header: { revision: 100n } };
          for (const e of events.splice(0)) yield e;
        }
      },
    },
  };
  const up = {
    unary: (_c: unknown, call: (c: unknown, o: unknown) => Promise<unknown>) => call(clients, {}),
    stream: (_c: unknown, call: (c: unknown, o: unknown) => AsyncIterable<unknown>) => call(clients, {}),
  } as unknown as Upstream;
  return { up, ranges, watches };
}

t.test("a snapshot in pages of 5,000 keys, pinned to the first page's revision, then a watch from the next", async (t) => {
  const etcd = fakeEtcd(12_345);
  const cache = new WatchCache(etcd.up, [enc("/p/")]);
  t.teardown(() => cache.close());
  cache.start();
  const p = cache.prefixes[0]!;
  await waitFor("the cache to be ready", () => p.ready);
  t.same(etcd.ranges.map((r) => [r.limit, r.revision]), [[5000n, 0n], [5000n, 100n], [5000n, 100n]], "three pages, the later ones at revision 100");
  t.equal(dec(etcd.ranges[1]!.key), "/p/004999\0", "each page starts after the last key of the one before");
  t.equal(p.store.size, 12_345, "every key held");
  t.equal(p.rev, 100n);
  const create0 = etcd.watches[0]!.requestUnion;
  t.equal(create0.case, "createRequest");
  if (create0.case === "createRequest") {
    t.equal(create0.value.startRevision, 101n, "watched from the snapshot's revision + 1");
    t.ok(create0.value.prevKv && create0.value.progressNotify, "with prev_kv and progress_notify");
  }
  t.ok(p.progressSafe, "3.5.16 orders progress answers");
});

t.test("a prefix over the store bound is not cached: its keys are let go, it says so once, and waits long before reading it again", async (t) => {
  const etcd = fakeEtcd(2_000, 1024);
  const lines: string[] = [];
  const log = { warn: (_o: unknown, msg: string) => lines.push(msg), info: () => {}, error: () => {}, debug: () => {} };
  const cache = new WatchCache(etcd.up, [enc("/p/")], { maxStoreBytes: 1024 * 1024 }, log as never);
  t.teardown(() => cache.close());
  cache.start();
  await waitFor("the first attempt to fail", () => lines.length > 0, 5_000);
  await new Promise((r) => setTimeout(r, 1_500));
  t.notOk(cache.prefixes[0]!.ready, "not ready: etcd answers");
  t.equal(cache.prefixes[0]!.store.size, 0, "the keys read so far are let go");
  t.equal(etcd.ranges.filter((r) => r.revision === 0n).length, 1, "not read again within the next seconds (10 minutes)");
  t.equal(lines.length, 1, "one warning");
  t.match(lines[0], /sync failed/);
});

t.test("a key kept from an event has bytes of its own: the event's whole response is not kept with it", async (t) => {
  // One 1 MiB buffer holding the response; the event's key and value are views into it, as protobuf-es decodes them.
  const response = new Uint8Array(1024 * 1024);
  const key = response.subarray(10, 15);
  key.set(enc("/p/zz"));
  const value = response.subarray(20, 21);
  const kv = create(KeyValueSchema, { key, value, modRevision: 101n, createRevision: 101n, version: 1n });
  const etcd = fakeEtcd(1, 10, [{ created: false, canceled: false, watchId: 1n, header: { revision: 101n }, events: [{ type: 0, kv }] }]);
  const cache = new WatchCache(etcd.up, [enc("/p/")]);
  t.teardown(() => cache.close());
  cache.start();
  const p = cache.prefixes[0]!;
  await waitFor("the event", () => p.rev === 101n);
  const kept = p.store.get("/p/zz")!;
  t.equal(kept.value.buffer.byteLength, 1, "the value's own buffer");
  t.equal(kept.key.buffer.byteLength, 5, "the key's own buffer");
  t.equal(p.store.get("/p/000000")!.value.buffer.byteLength, 10, "snapshot keys too");
});
