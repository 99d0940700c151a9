/**
 * The range cache's rules: LRU bounds, invalidation by interval, no stale value stored after an
 * invalidation, and shared replies (encoded once) that are never changed.
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import t from "tap";
import { RangeResponseSchema, type RangeResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { KeyValueSchema } from "../../gen/mvccpb/kv_pb.js";
import { ALL_KEYS, intervalOf, pointOf } from "../../src/upstream/client/key-ranges.js";
import { RangeCache } from "../../src/upstream/kv/range-cache.js";
import { binaryOf } from "../../src/wire/shared-replies.js";

const enc = (s: string) => new TextEncoder().encode(s);
const NUL = new Uint8Array([0]);

function answer(rev: bigint, key: string, value: string): RangeResponse {
  return create(RangeResponseSchema, { header: { revision: rev }, kvs: [create(KeyValueSchema, { key: enc(key), value: enc(value), modRevision: rev })], count: 1n });
}

function live(rev = 10n, limits = {}): RangeCache {
  const c = new RangeCache(limits);
  c.enable(rev);
  return c;
}

t.test("disabled: nothing stored, nothing served", async (t) => {
  const c = new RangeCache();
  t.notOk(c.store("k", pointOf(enc("k")), answer(5n, "k", "v"), c.ticket()));
  t.equal(c.get("k"), undefined);
  c.enable(5n);
  t.ok(c.store("k", pointOf(enc("k")), answer(5n, "k", "v"), c.ticket()));
  t.ok(c.get("k"));
  c.disable();
  t.equal(c.get("k"), undefined, "disable empties the cache");
  t.equal(c.size, 0);
  t.equal(c.bytes, 0);
});

t.test("a write to the range drops the entry; other keys keep theirs", async (t) => {
  const c = live();
  c.store("get k", pointOf(enc("k")), answer(10n, "k", "v"), c.ticket());
  c.store("get j", pointOf(enc("j")), answer(10n, "j", "v"), c.ticket());
  c.store("from k", intervalOf(enc("k"), NUL), answer(10n, "k", "v"), c.ticket());
  c.store("prefix a", intervalOf(enc("a"), enc("b")), answer(10n, "a1", "v"), c.ticket());
  c.invalidate(pointOf(enc("kz")), 11n);
  t.equal(c.get("from k"), undefined, 'a from-key entry (range_end "\\0") is invalidated by a later key');
  t.ok(c.get("get k"));
  t.ok(c.get("get j"));
  t.ok(c.get("prefix a"));
  c.invalidate(pointOf(enc("a\xff")), 12n);
  t.equal(c.get("prefix a"), undefined);
  c.invalidate(intervalOf(enc("i"), enc("l"))!, 13n);
  t.equal(c.get("get k"), undefined, "a range delete drops the keys inside it");
  t.equal(c.get("get j"), undefined);
  t.equal(c.size, 0);
});

t.test("a read that started before an invalidation cannot store its old answer afterwards", async (t) => {
  const c = live(10n);
  const ticket = c.ticket();
  // etcd answered at revision 10; meanwhile k was written at 11 and that invalidation was applied.
  c.invalidate(pointOf(enc("k")), 11n);
  t.notOk(c.store("get k", pointOf(enc("k")), answer(10n, "k", "old"), ticket), "older than the invalidation: refused");
  t.equal(c.get("get k"), undefined);
  t.ok(c.store("get j", pointOf(enc("j")), answer(10n, "j", "v"), ticket), "another key is not affected");
  t.ok(c.store("get k", pointOf(enc("k")), answer(11n, "k", "new"), c.ticket()), "an answer that includes the write is stored");
  t.ok(c.store("from a", intervalOf(enc("a"), NUL), answer(11n, "k", "new"), c.ticket()), "an answer at the write's revision includes it");
  t.notOk(c.store("from a 10", intervalOf(enc("a"), NUL), answer(10n, "k", "old"), c.ticket()), "from-key at 10 overlaps the write at 11");
});

t.test("a reset while a read is out refuses its answer (generation), as does a read older than the watch", async (t) => {
  const c = live(10n);
  const before = c.ticket();
  c.disable();
  c.enable(20n);
  t.notOk(c.store("get k", pointOf(enc("k")), answer(25n, "k", "v"), before), "ticket from before the reset");
  t.notOk(c.store("get k", pointOf(enc("k")), answer(19n, "k", "v"), c.ticket()), "answer older than the watch's start");
  t.ok(c.store("get k", pointOf(enc("k")), answer(20n, "k", "v"), c.ticket()));
});

t.test("an all-keys invalidation drops everything and refuses every older answer", async (t) => {
  const c = live(10n);
  c.store("a", pointOf(enc("a")), answer(10n, "a", "v"), c.ticket());
  c.store("b", intervalOf(enc("b"), enc("c")), answer(10n, "b", "v"), c.ticket());
  c.invalidate(pointOf(enc("z")), 14n);
  c.invalidate(ALL_KEYS, 12n);
  t.equal(c.size, 0);
  t.notOk(c.store("x", pointOf(enc("x")), answer(11n, "x", "v"), c.ticket()));
  t.ok(c.store("x", pointOf(enc("x")), answer(12n, "x", "v"), c.ticket()));
  t.notOk(c.store("z", pointOf(enc("z")), answer(13n, "z", "v"), c.ticket()), "a newer logged invalidation survives an older all-keys one");
});

t.test("an invalidation with unknown revision only drops", async (t) => {
  const c = live(10n);
  c.store("k", pointOf(enc("k")), answer(10n, "k", "v"), c.ticket());
  c.invalidate(pointOf(enc("k")));
  t.equal(c.get("k"), undefined);
  t.ok(c.store("k", pointOf(enc("k")), answer(10n, "k", "v"), c.ticket()));
});

t.test("the invalidation log is bounded; reads older than what it forgot are refused", async (t) => {
  const c = live(10n, { maxLog: 3 });
  for (let r = 11n; r <= 15n; r++) c.invalidate(pointOf(enc(`w${r}`)), r);
  t.notOk(c.store("k", pointOf(enc("k")), answer(11n, "k", "v"), c.ticket()), "revision 12 was forgotten: 11 may be stale");
  t.ok(c.store("k", pointOf(enc("k")), answer(12n, "k", "v"), c.ticket()));
});

t.test("LRU: the entry bound evicts the least recently used", async (t) => {
  const c = live(10n, { maxEntries: 3 });
  for (const k of ["a", "b", "c"]) c.store(k, pointOf(enc(k)), answer(10n, k, "v"), c.ticket());
  t.ok(c.get("a"), "touch a: b is now the oldest");
  c.store("d", pointOf(enc("d")), answer(10n, "d", "v"), c.ticket());
  t.equal(c.size, 3);
  t.equal(c.get("b"), undefined, "b evicted");
  t.ok(c.get("a"));
  t.ok(c.get("c"));
  t.ok(c.get("d"));
  c.invalidate(pointOf(enc("b")), 11n);
  t.equal(c.size, 3, "the evicted entry left the index too");
});

t.test("LRU: the byte bound evicts until the new entry fits; too large is never stored", async (t) => {
  const big = "x".repeat(1000);
  const c = live(10n, { maxBytes: 3000, maxEntryBytes: 2000 });
  t.ok(c.store("a", pointOf(enc("a")), answer(10n, "a", big), c.ticket()));
  t.ok(c.store("b", pointOf(enc("b")), answer(10n, "b", big), c.ticket()));
  t.ok(c.bytes > 2000 && c.bytes <= 3000, `bytes ${c.bytes}`);
  t.ok(c.store("c", pointOf(enc("c")), answer(10n, "c", big), c.ticket()));
  t.ok(c.bytes <= 3000, `bytes ${c.bytes} within the bound`);
  t.equal(c.get("a"), undefined, "a evicted for bytes");
  t.notOk(c.store("huge", pointOf(enc("h")), answer(10n, "h", "y".repeat(2500)), c.ticket()), "larger than maxEntryBytes");
  t.ok(c.get("b") && c.get("c"), "the refused entry evicted nothing");
});

t.test("hits report the revision the watch has reached; hit and miss counters", async (t) => {
  const c = live(10n);
  c.store("k", pointOf(enc("k")), answer(10n, "k", "v"), c.ticket());
  c.advance(42n);
  const hit = c.get("k")!;
  t.equal(hit.header?.revision, 42n, "unchanged up to 42");
  t.equal(hit.kvs[0]?.modRevision, 10n, "the data is untouched");
  c.get("missing");
  t.equal(c.hits, 1);
  t.equal(c.misses, 1);
});

t.test("a hit's encoding is made once, and a raised revision is a new reply with its own encoding", async (t) => {
  const c = live(10n);
  c.store("k", pointOf(enc("k")), answer(10n, "k", "v"), c.ticket());
  const first = c.get("k")!;
  const bytes = binaryOf(RangeResponseSchema, first);
  t.equal(c.get("k"), first, "the same reply for every hit while the watch stays put");
  t.equal(binaryOf(RangeResponseSchema, c.get("k")!), bytes, "encoded once");
  c.advance(42n);
  const raised = c.get("k")!;
  t.not(raised, first, "a new reply for the raised revision");
  t.equal(first.header?.revision, 10n, "the shared one is never changed");
  t.equal(fromBinary(RangeResponseSchema, binaryOf(RangeResponseSchema, raised)).header?.revision, 42n, "its encoding says 42");
  t.equal(c.get("k"), raised, "and it is kept for the hits that follow");
});

t.test("a reply that is not shared is encoded afresh every time", async (t) => {
  const r = answer(1n, "k", "v");
  const once = binaryOf(RangeResponseSchema, r);
  r.count = 7n;
  t.equal(fromBinary(RangeResponseSchema, binaryOf(RangeResponseSchema, r)).count, 7n);
  t.not(binaryOf(RangeResponseSchema, r), once);
});
