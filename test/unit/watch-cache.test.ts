/**
 * The watch cache's pure parts: the history's bounds and floor, views undone through prev_kv, the key
 * store's order, which etcd versions order progress answers, and the --watch-cache-* flags.
 */
import { create } from "@bufbuild/protobuf";
import t from "tap";
import { EventSchema, Event_EventType, KeyValueSchema, type Event } from "../../gen/mvccpb/kv_pb.js";
import { buildOptions } from "../../src/config/options.js";
import { parseFlags } from "../../src/config/flags.js";
import { DEFAULT_HISTORY, History } from "../../src/upstream/cache/history.js";
import { KeyStore } from "../../src/upstream/cache/key-store.js";
import { progressAnswersOrdered } from "../../src/upstream/cache/etcd-version.js";
import { DEFAULT_WATCH_CACHE, prefixEnd } from "../../src/upstream/cache/watch-cache.js";
import { keyString } from "../../src/upstream/client/key-ranges.js";

const enc = (s: string) => new TextEncoder().encode(s);
const kv = (key: string, value: string, mod: number, version: number) => create(KeyValueSchema, { key: enc(key), value: enc(value), modRevision: BigInt(mod), createRevision: BigInt(mod - version + 1), version: BigInt(version) });
const put = (key: string, value: string, mod: number, version: number, prev?: ReturnType<typeof kv>): Event => create(EventSchema, { type: Event_EventType.PUT, kv: kv(key, value, mod, version), ...(prev ? { prevKv: prev } : {}) });
const del = (key: string, mod: number, prev?: ReturnType<typeof kv>): Event => create(EventSchema, { type: Event_EventType.DELETE, kv: create(KeyValueSchema, { key: enc(key), modRevision: BigInt(mod) }), ...(prev ? { prevKv: prev } : {}) });
const all = { start: "", end: undefined };

t.test("the history's bounds as stated (100,000 events, 64 MiB, 5 minutes) and the floor they raise", async (t) => {
  t.same(DEFAULT_HISTORY, { maxEvents: 100_000, maxBytes: 64 * 1024 * 1024, maxAgeMs: 300_000 });
  const h = new History({ ...DEFAULT_HISTORY }, 10n);
  for (let r = 11; r <= 100_010; r++) h.append(BigInt(r), [put(`k${r % 7}`, "v", r, 1)], 0);
  t.equal(h.events, 100_000, "100,000 events kept");
  t.equal(h.floor, 10n, "nothing dropped yet");
  h.append(100_011n, [put("k", "v", 100_011, 1)], 0);
  t.equal(h.events, 100_000, "the 100,001st drops the oldest");
  t.equal(h.floor, 11n, "the floor rises to the dropped revision");
  h.trim(300_001);
  t.equal(h.length, 0, "older than 5 minutes: dropped");
  t.equal(h.floor, 100_011n);
  const big = new History({ ...DEFAULT_HISTORY }, 0n);
  const value = "x".repeat(1024 * 1024);
  for (let r = 1; r <= 65; r++) big.append(BigInt(r), [put("k", value, r, 1)], 0);
  t.ok(big.bytes <= 64 * 1024 * 1024 && big.length === 63, `64 MiB: ${big.length} one-MiB events kept`);
});

t.test("an event that cannot be undone raises the floor to its revision", async (t) => {
  const h = new History({ ...DEFAULT_HISTORY }, 1n);
  h.append(2n, [put("a", "1", 2, 1)], 0);
  t.equal(h.floor, 1n, "a created key needs no prev_kv");
  h.append(3n, [put("a", "2", 3, 2)], 0);
  t.equal(h.floor, 3n, "an overwrite without prev_kv");
  h.append(4n, [del("a", 4)], 0);
  t.equal(h.floor, 4n, "a delete without prev_kv");
});

t.test("views undo later changes through prev_kv; since() replays from a revision", async (t) => {
  const h = new History({ ...DEFAULT_HISTORY }, 1n);
  const a1 = kv("a", "1", 2, 1);
  h.append(2n, [put("a", "1", 2, 1)], 0);
  h.append(3n, [put("a", "2", 3, 2, a1), put("b", "x", 3, 1)], 0);
  h.append(4n, [del("b", 4, kv("b", "x", 3, 1))], 0);
  const at = (rev: bigint) => Object.fromEntries([...h.undo(rev, all)].map(([k, v]) => [k, v ? new TextDecoder().decode(v.value) : null]));
  t.same(at(3n), { b: "x" }, "at 3: b existed");
  t.same(at(2n), { a: "1", b: null }, "at 2: a was 1, b did not exist");
  t.same(at(1n), { a: null, b: null }, "at 1: neither");
  t.same([...h.since(3n)].map((e) => e.rev), [3n, 4n]);
  t.same(h.undo(2n, { start: "b", end: "c" }).size, 1, "only keys inside the interval");
});

t.test("the key store scans and counts in etcd's byte order", async (t) => {
  const s = new KeyStore();
  for (const k of ["b", "a", "a\u00ff", "a\u0000", "c", "ab"]) s.set(k, kv(k, "v", 1, 1));
  t.same(s.scan(all).map((x) => keyString(x.key)), ["a", "a\u0000", "ab", "a\u00ff", "b", "c"].map((k) => keyString(enc(k))).sort());
  t.equal(s.count({ start: "a", end: "b" }), 4);
  s.delete("ab");
  s.delete("zz");
  t.equal(s.size, 5);
  t.equal(s.count({ start: "b", end: undefined }), 2);
  const before = s.bytes;
  s.set("b", kv("b", "longer value", 2, 2));
  t.ok(s.bytes > before, "bytes follow the values");
});

t.test("progress answers are ordered from etcd 3.4.31, 3.5.13 and 3.6", async (t) => {
  for (const [v, ordered] of [["3.4.23", false], ["3.4.30", false], ["3.4.31", true], ["3.5.12", false], ["3.5.13", true], ["3.5.16", true], ["3.6.0", true], ["", false], ["4.0.0", true]] as const) {
    t.equal(progressAnswersOrdered(v), ordered, v || "(unknown)");
  }
});

t.test("prefix ends as clientv3.GetPrefixRangeEnd", async (t) => {
  t.same([...prefixEnd(enc("/wc/"))], [...enc("/wc0")]);
  t.same([...prefixEnd(new Uint8Array([0x61, 0xff]))], [0x62]);
  t.same([...prefixEnd(new Uint8Array([0xff]))], [0], "all 0xff: every key from it on");
});

t.test("--watch-cache-* flags", async (t) => {
  const opts = (args: string[]) => { const { values, given } = parseFlags(args); return buildOptions(values, given).watchCache; };
  t.same(opts([]), { prefixes: [], maxEvents: 100_000, maxAgeMs: 300_000, progressNotifyMs: 600_000 }, "off by default, the stated bounds");
  t.same(opts(["--watch-cache-prefix=/a/", "--watch-cache-prefix", "/b/", "--watch-cache-history-max-events=10", "--watch-cache-history-max-age=30s", "--watch-cache-progress-notify-interval=1s"]), { prefixes: ["/a/", "/b/"], maxEvents: 10, maxAgeMs: 30_000, progressNotifyMs: 1_000 }, "repeatable, bounds given");
  t.same(opts(["--watch-cache-prefix=/a/", "--watch-cache-prefix=/a/"]).prefixes, ["/a/"], "a prefix given twice is one cache");
  t.throws(() => opts(["--watch-cache-prefix=/a/", "--watch-cache-prefix=/a/b/"]), /inside/, "nested prefixes are refused");
  t.throws(() => opts(["--watch-cache-history-max-events=0"]), /positive/);
  t.equal(DEFAULT_WATCH_CACHE.catchUpMs, 1_000);
  t.equal(DEFAULT_WATCH_CACHE.maxStoreBytes, 512 * 1024 * 1024, "512 MiB of keys per prefix");
});
