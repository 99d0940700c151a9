/** etcd key ranges: range_end "" (one key), "\0" (from key), prefix ends with 0xff carry, and the index. */
import t from "tap";
import { ALL_KEYS, intervalOf, KeyRanges, overlaps, pointOf, type KeyInterval } from "../../src/upstream/client/key-ranges.js";

const b = (...bytes: number[]) => new Uint8Array(bytes);
const s = (str: string) => new Uint8Array([...str].map((c) => c.charCodeAt(0)));

/** clientv3's GetPrefixRangeEnd: the last byte below 0xff incremented, what follows dropped; all 0xff → "\0". */
function prefixEnd(prefix: Uint8Array): Uint8Array {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) return new Uint8Array([...prefix.subarray(0, i), prefix[i]! + 1]);
  }
  return b(0);
}

const hits = (iv: KeyInterval | undefined, key: Uint8Array) => iv !== undefined && overlaps(iv, pointOf(key));

t.test("a single key (range_end empty) covers that key only", async (t) => {
  const iv = intervalOf(s("foo"), b());
  t.ok(hits(iv, s("foo")));
  t.notOk(hits(iv, s("foo\0")), "foo\\0 is the next key, not foo");
  t.notOk(hits(iv, s("fo")));
  t.notOk(hits(iv, s("fop")));
});

t.test('range_end "\\0" is every key from key on (etcd proxy bug #22397)', async (t) => {
  const iv = intervalOf(s("k"), b(0));
  t.equal(iv?.end, undefined, "unbounded above");
  t.ok(hits(iv, s("k")));
  t.ok(hits(iv, s("k2")));
  t.ok(hits(iv, s("zzzz")));
  t.ok(hits(iv, b(0xff, 0xff, 0xff)));
  t.notOk(hits(iv, s("j")));
  t.notOk(hits(iv, b(0)));
});

t.test('key "\\0" with range_end "\\0" is the whole keyspace', async (t) => {
  const iv = intervalOf(b(0), b(0));
  for (const k of [b(0), b(1), s("a"), b(0xff), b(0xff, 0xff, 0)]) t.ok(hits(iv, k), `covers ${[...k]}`);
  t.ok(overlaps(iv!, ALL_KEYS));
});

t.test("prefix ends, including 0xff carry", async (t) => {
  const p1 = intervalOf(s("a/"), prefixEnd(s("a/")));
  t.ok(hits(p1, s("a/")));
  t.ok(hits(p1, s("a/x")));
  t.ok(hits(p1, b(0x61, 0x2f, 0xff, 0xff)));
  t.notOk(hits(p1, s("a0")), "a0 is the end, excluded");
  t.notOk(hits(p1, s("a")));

  const carry = intervalOf(b(0x61, 0xff), prefixEnd(b(0x61, 0xff)));
  t.same([...prefixEnd(b(0x61, 0xff))], [0x62], "a\\xff → b");
  t.ok(hits(carry, b(0x61, 0xff)));
  t.ok(hits(carry, b(0x61, 0xff, 0x01)));
  t.ok(hits(carry, b(0x61, 0xff, 0xff, 0xff)));
  t.notOk(hits(carry, s("b")));
  t.notOk(hits(carry, b(0x61, 0xfe, 0xff)));

  const allFF = intervalOf(b(0xff, 0xff), prefixEnd(b(0xff, 0xff)));
  t.equal(allFF?.end, undefined, "a prefix of only 0xff becomes from-key");
  t.ok(hits(allFF, b(0xff, 0xff)));
  t.ok(hits(allFF, b(0xff, 0xff, 0x00)));
  t.notOk(hits(allFF, b(0xff, 0xfe)));

  const high = intervalOf(b(0x80), b(0x81));
  t.ok(hits(high, b(0x80, 0x00)), "bytes >= 0x80 compare as unsigned bytes");
  t.notOk(hits(high, b(0x7f, 0xff)));
});

t.test("an inverted range holds no key", async (t) => {
  t.equal(intervalOf(s("b"), s("a")), undefined);
  t.equal(intervalOf(s("b"), s("b")), undefined);
});

t.test("range overlaps range", async (t) => {
  const a = intervalOf(s("a"), s("c"))!;
  t.ok(overlaps(a, intervalOf(s("b"), s("z"))!));
  t.notOk(overlaps(a, intervalOf(s("c"), s("z"))!), "half-open: c is outside [a, c)");
  t.ok(overlaps(a, intervalOf(s("0"), b(0))!));
  t.ok(overlaps(intervalOf(s("x"), b(0))!, intervalOf(s("y"), b(0))!), "two from-key ranges always meet");
});

t.test("the index finds the entries a write touches", async (t) => {
  const idx = new KeyRanges<string>();
  idx.add(pointOf(s("k1")), "get k1");
  idx.add(pointOf(s("k1")), "get k1 as alice");
  idx.add(intervalOf(s("k"), prefixEnd(s("k")))!, "prefix k");
  idx.add(intervalOf(s("k"), b(0))!, "from k");
  idx.add(intervalOf(b(0), b(0))!, "all");
  idx.add(pointOf(s("other")), "get other");
  t.same(idx.overlapping(pointOf(s("k1"))).sort(), ["all", "from k", "get k1", "get k1 as alice", "prefix k"]);
  t.same(idx.overlapping(pointOf(s("zz"))).sort(), ["all", "from k"]);
  t.same(idx.overlapping(intervalOf(s("o"), s("p"))!).sort(), ["all", "from k", "get other"]);
  t.same(idx.overlapping(ALL_KEYS).length, 6);
  idx.remove(pointOf(s("k1")), "get k1");
  idx.remove(intervalOf(s("k"), b(0))!, "from k");
  t.same(idx.overlapping(pointOf(s("k1"))).sort(), ["all", "get k1 as alice", "prefix k"]);
  idx.clear();
  t.same(idx.overlapping(ALL_KEYS), []);
});
