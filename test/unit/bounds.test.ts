/**
 * The bounds README "Coalescing" states, asserted at their stated values with the real classes and their
 * default options (etcd is faked only where a hub needs an upstream): the range cache's 4,096 entries,
 * 64 MiB and 1 MiB per answer; the lease hub's 1,024 unanswered keep-alives per client stream and 100,000
 * in all; a client Watch stream's buffer of 1,024 responses or 16 MiB. Each bound is exercised exactly at
 * its value and one past it, with literal numbers, so a change of constant or policy fails here.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import t from "tap";
import {
  LeaseKeepAliveRequestSchema,
  LeaseKeepAliveResponseSchema,
  RangeResponseSchema,
  WatchRequestSchema,
  WatchResponseSchema,
  type LeaseKeepAliveRequest,
  type LeaseKeepAliveResponse,
  type RangeResponse,
  type WatchRequest,
  type WatchResponse,
} from "../../gen/etcdserverpb/rpc_pb.js";
import { EventSchema, Event_EventType, KeyValueSchema } from "../../gen/mvccpb/kv_pb.js";
import { PushQueue } from "../../src/upstream/client/push-queue.js";
import { DEFAULT_RANGE_CACHE_LIMITS, RangeCache } from "../../src/upstream/kv/range-cache.js";
import { DEFAULT_LEASE_HUB, LeaseHub } from "../../src/upstream/lease/lease-hub.js";
import { WatchRanges } from "../../src/upstream/watch/watch-ranges.js";
import { WATCH_BUFFER_BYTES, WATCH_BUFFER_RESPONSES, WatchStream } from "../../src/upstream/watch/watch-stream.js";
import { fakeUpstream, tick } from "../helpers/fake-upstream.js";

const MiB = 1024 * 1024;
const enc = (s: string) => new TextEncoder().encode(s);
/** One shared buffer: every large value is a view of it, so 64 MiB of entries cost ~1 MiB of memory. */
const BIG = new Uint8Array(MiB);

/** Polls (macrotask turns) until `cond` holds; fails the wait after ~5,000 turns. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 5000; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`timed out waiting for: ${what}`);
}

// ---------------------------------------------------------------------------------------------------------
// Range cache
// ---------------------------------------------------------------------------------------------------------

const REV = 10n;
const KV_KEY = enc("k");

/**
 * A Range answer whose size, as RangeCache estimates it for `cacheKey` (2 per key char + 256, and per kv
 * its key + value + 96), is exactly `bytes`.
 */
function answerOfSize(cacheKey: string, bytes: number): RangeResponse {
  const valueLen = bytes - (2 * cacheKey.length + 256) - (KV_KEY.length + 96);
  if (valueLen < 0 || valueLen > BIG.length) throw new Error(`cannot make an answer of ${bytes} bytes for ${cacheKey}`);
  return create(RangeResponseSchema, {
    header: { revision: REV },
    kvs: [create(KeyValueSchema, { key: KV_KEY, value: BIG.subarray(0, valueLen), modRevision: REV })],
    count: 1n,
  });
}

function liveCache(): RangeCache {
  const c = new RangeCache(); // default limits
  c.enable(REV);
  return c;
}

const put = (c: RangeCache, key: string, bytes = 512) => c.store(key, undefined, answerOfSize(key, bytes), c.ticket());
/** Present, without a get (which would make it the most recently used). */
const has = (c: RangeCache, key: string) => (c as unknown as { entries: Map<string, unknown> }).entries.has(key);

t.test("range cache: the default limits are README's", async (t) => {
  t.equal(DEFAULT_RANGE_CACHE_LIMITS.maxEntries, 4096);
  t.equal(DEFAULT_RANGE_CACHE_LIMITS.maxBytes, 64 * MiB);
  t.equal(DEFAULT_RANGE_CACHE_LIMITS.maxEntryBytes, 1 * MiB);
  const c = new RangeCache();
  t.same(c.limits, DEFAULT_RANGE_CACHE_LIMITS, "a cache built without options uses them");
});

t.test("range cache: 4,096 entries fit; the 4,097th evicts the least recently used one", async (t) => {
  const c = liveCache();
  let stored = 0;
  for (let i = 0; i < 4096; i++) if (put(c, `e${i}`)) stored++;
  t.equal(stored, 4096, "every store accepted");
  t.equal(c.size, 4096, "all 4,096 held");
  t.ok(has(c, "e0") && has(c, "e4095"), "nothing evicted at exactly 4,096");
  t.ok(c.get("e0"), "e0 read: now the most recently used");
  t.ok(put(c, "e4096"), "the 4,097th is stored");
  t.equal(c.size, 4096, "still 4,096");
  t.notOk(has(c, "e1"), "the least recently used (e1, not the older but recently read e0) was evicted");
  t.ok(has(c, "e0"), "the recently read e0 stays");
  t.ok(has(c, "e2") && has(c, "e4096"));
  t.ok(put(c, "e4097"));
  t.notOk(has(c, "e2"), "the next store evicts the next least recently used");
  t.equal(c.size, 4096);
});

t.test("range cache: an answer of exactly 1 MiB is stored, one byte more is not", async (t) => {
  const c = liveCache();
  t.ok(c.store("one-mib", undefined, answerOfSize("one-mib", MiB), c.ticket()), "1 MiB: stored");
  t.equal(c.bytes, MiB);
  t.notOk(c.store("over", undefined, answerOfSize("over", MiB + 1), c.ticket()), "1 MiB + 1: refused");
  t.equal(c.size, 1, "nothing evicted to make room for a refused answer");
  t.equal(c.bytes, MiB);
  t.equal(c.get("over"), undefined);
});

t.test("range cache: 64 MiB fit; a byte beyond evicts the least recently used", async (t) => {
  const SMALL = 1000;
  // Exactly 64 MiB: 63 entries of 1 MiB, one of 1 MiB - SMALL, then one of SMALL.
  const full = liveCache();
  let stored = 0;
  for (let i = 0; i < 63; i++) if (put(full, `m${i}`, MiB)) stored++;
  t.equal(stored, 63);
  t.ok(put(full, "m63", MiB - SMALL));
  t.ok(put(full, "small", SMALL));
  t.equal(full.bytes, 64 * MiB, "exactly 64 MiB held");
  t.equal(full.size, 65, "nothing evicted at exactly 64 MiB");
  t.ok(full.get("m0"), "m0 read: most recently used");
  t.ok(put(full, "small2", SMALL), "another SMALL bytes (64 MiB + SMALL) is stored...");
  t.notOk(has(full, "m1"), "...by evicting the least recently used (m1)");
  t.ok(has(full, "m0") && has(full, "m2") && has(full, "small"));
  t.equal(full.bytes, 64 * MiB - MiB + SMALL);

  // 64 MiB + 1 byte would be held: the LRU goes.
  const over = liveCache();
  for (let i = 0; i < 63; i++) put(over, `m${i}`, MiB);
  t.ok(put(over, "m63", MiB - SMALL + 1));
  t.equal(over.bytes, 64 * MiB - SMALL + 1);
  t.equal(over.size, 64);
  t.ok(put(over, "small", SMALL), "an entry that takes the total one byte past 64 MiB...");
  t.notOk(has(over, "m0"), "...evicts the least recently used");
  t.equal(over.size, 64);
  t.equal(over.bytes, 63 * MiB - SMALL + 1 + SMALL);
  t.ok(over.bytes <= 64 * MiB);
});

// ---------------------------------------------------------------------------------------------------------
// Lease keep-alive hub
// ---------------------------------------------------------------------------------------------------------

function keepAliveClient(hub: LeaseHub) {
  const requests = new PushQueue<LeaseKeepAliveRequest>(4096);
  const abort = new AbortController();
  let error: ConnectError | undefined;
  let ended = false;
  const done = (async () => {
    try {
      for await (const _ of hub.serve(requests, abort.signal)) { /* replies are not the point here */ }
      ended = true;
    } catch (e) {
      error = ConnectError.from(e);
    }
  })();
  return {
    ask(id: bigint, n = 1) {
      for (let i = 0; i < n; i++) if (!requests.push(create(LeaseKeepAliveRequestSchema, { ID: id }))) throw new Error("request queue full");
    },
    disconnect: () => abort.abort(),
    done,
    get error() { return error; },
    get ended() { return ended; },
  };
}

t.test("lease hub: the default bounds are README's", async (t) => {
  t.equal(DEFAULT_LEASE_HUB.maxPendingPerStream, 1024);
  t.equal(DEFAULT_LEASE_HUB.maxWaiters, 100_000);
  const hub = new LeaseHub(fakeUpstream().up);
  t.teardown(() => hub.close());
  t.same(hub.options, DEFAULT_LEASE_HUB, "a hub built without options uses them");
});

t.test("lease hub: 1,024 unanswered keep-alives on one stream are held; the 1,025th ends that stream ResourceExhausted", async (t) => {
  const fake = fakeUpstream();
  const hub = new LeaseHub(fake.up);
  t.teardown(() => hub.close());
  const other = keepAliveClient(hub);
  other.ask(1n);
  const a = keepAliveClient(hub);
  for (let id = 1n; id <= 1024n; id++) a.ask(id);
  await until(() => hub.waiting === 1025, "1,025 waiters");
  await tick(5);
  t.equal(a.error, undefined, "exactly 1,024 unanswered: the stream stays");
  t.notOk(a.ended);
  t.equal(hub.waiting, 1025);
  a.ask(1025n);
  await a.done;
  t.equal(a.error?.code, Code.ResourceExhausted, "the 1,025th unanswered keep-alive ends it ResourceExhausted");
  t.match(a.error?.rawMessage ?? "", /1024 keep-alives unanswered on this stream/);
  t.equal(hub.waiting, 1, "its waiters are released with it");
  t.equal(other.error, undefined, "another stream is untouched");
  t.notOk(other.ended);

  // An answer frees a slot: 1,024 unanswered again is fine after etcd answered some.
  const b = keepAliveClient(hub);
  b.ask(7n, 1024);
  await until(() => hub.waiting === 1025, "b's 1,024 waiters");
  const up = fake.streams[0]!;
  up.respond(create(LeaseKeepAliveResponseSchema, { header: { revision: 1n }, ID: 7n, TTL: 5n }));
  await until(() => hub.waiting === 1, "etcd's answer to lease 7 answers all 1,024");
  b.ask(8n, 1024);
  await until(() => hub.waiting === 1025, "b's next 1,024");
  await tick(5);
  t.equal(b.error, undefined, "answered keep-alives no longer count");
  b.ask(8n);
  await b.done;
  t.equal(b.error?.code, Code.ResourceExhausted, "the count is per keep-alive asked, not per lease");
});

t.test("lease hub: 100,000 unanswered keep-alives in all are held; the 100,001st ends the asking stream ResourceExhausted", async (t) => {
  const fake = fakeUpstream();
  const hub = new LeaseHub(fake.up);
  t.teardown(() => hub.close());
  const clients: ReturnType<typeof keepAliveClient>[] = [];
  // 97 streams of 1,024 (each at its own bound) + one of 672 = 100,000.
  for (let i = 0; i < 97; i++) {
    const c = keepAliveClient(hub);
    c.ask(BigInt(i + 1), 1024);
    clients.push(c);
  }
  const last = keepAliveClient(hub);
  last.ask(1000n, 100_000 - 97 * 1024);
  clients.push(last);
  await until(() => hub.waiting === 100_000, "100,000 waiters");
  await tick(5);
  t.equal(hub.waiting, 100_000);
  t.ok(clients.every((c) => c.error === undefined && !c.ended), "exactly 100,000 in all: every stream stays");

  const asker = keepAliveClient(hub);
  asker.ask(5000n);
  await asker.done;
  t.equal(asker.error?.code, Code.ResourceExhausted, "the 100,001st ends the stream that asked it");
  t.match(asker.error?.rawMessage ?? "", /100000 keep-alives unanswered on this proxy/);
  t.ok(clients.every((c) => c.error === undefined && !c.ended), "the other streams are untouched");
  t.equal(hub.waiting, 100_000);

  // A stream that asked more beyond the total (not at its own bound) is ended too, and its waiters go.
  last.ask(1000n);
  await last.done;
  t.equal(last.error?.code, Code.ResourceExhausted, "a stream below its own bound is refused by the total");
  t.equal(hub.waiting, 100_000 - 672, "the refused stream's 672 waiters are released at once");

  // A client that leaves: its unanswered keep-alives stop counting at once, before etcd answers them.
  const leaver = clients[0]!;
  leaver.disconnect();
  await leaver.done;
  t.equal(hub.waiting, 100_000 - 672 - 1024, "a departed stream's 1,024 waiters are released when it leaves");
  fake.streams[0]!.respond(create(LeaseKeepAliveResponseSchema, { header: { revision: 1n }, ID: 1n, TTL: 5n }));
  await tick(5);
  t.equal(hub.waiting, 100_000 - 672 - 1024, "etcd's later reply for them finds no waiter and changes nothing");

  // The freed room is usable up to exactly 100,000 again, and not one more.
  const refill = keepAliveClient(hub);
  refill.ask(6000n, 1024);
  const refill2 = keepAliveClient(hub);
  refill2.ask(6001n, 672);
  await until(() => hub.waiting === 100_000, "100,000 waiters again");
  await tick(5);
  t.equal(refill.error, undefined);
  t.equal(refill2.error, undefined, "the room left by departed streams is reusable up to exactly 100,000");
  refill2.ask(6001n);
  await refill2.done;
  t.equal(refill2.error?.code, Code.ResourceExhausted, "and the 100,001st is refused again");
  for (const c of [...clients, refill]) c.disconnect();
  await Promise.all([...clients, refill].map((c) => c.done));
  t.equal(hub.waiting, 0, "every departed stream released its waiters");
});

// ---------------------------------------------------------------------------------------------------------
// Watch: the client stream's buffer
// ---------------------------------------------------------------------------------------------------------

/**
 * One client Watch stream on a real WatchRanges over a fake etcd, with one watcher on "k". The client reads
 * the `created` and then stops reading. `event(rev, valueLen)` is etcd's event response for the watch.
 */
async function unreadWatcher(t: { teardown(fn: () => unknown): void }) {
  const fake = fakeUpstream();
  const ranges = new WatchRanges({ eventsCoalesced: 0, lastHeader: undefined }, fake.up, new Headers(), () => {});
  const abort = new AbortController();
  const stream = new WatchStream(ranges, abort.signal);
  const requests = new PushQueue<WatchRequest>(16);
  const client = stream.batches(requests);
  t.teardown(async () => {
    abort.abort();
    ranges.upstream.close();
    await client.return(undefined);
  });
  requests.push(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: enc("k") } } }));
  const first = client.next();
  const up = await fake.nextStream<WatchRequest, WatchResponse>();
  await up.untilSent(1);
  const createReq = up.sent[0]!.requestUnion;
  if (createReq.case !== "createRequest") throw new Error("expected a create upstream");
  const upstreamId = createReq.value.watchId;
  up.respond(create(WatchResponseSchema, { header: { revision: 1n }, watchId: upstreamId, created: true }));
  const created = await first;
  if (created.done || !created.value[0]?.created) throw new Error("expected the client's created");
  const watcher = [...(stream as unknown as { byId: Map<bigint, import("../../src/upstream/watch/watcher.js").Watcher> }).byId.values()][0]!;
  const event = (rev: bigint, valueLen = 1) => create(WatchResponseSchema, {
    header: { revision: rev },
    watchId: upstreamId,
    events: [create(EventSchema, { type: Event_EventType.PUT, kv: { key: enc("k"), value: BIG.subarray(0, valueLen), modRevision: rev, createRevision: 2n, version: rev - 1n } })],
  });
  return { fake, up, stream, client, watcher, event };
}

/** A client response's size as the buffer counts it: 64 + per event 48 + key + value (no prev_kv asked). */
const valueFor = (responseBytes: number) => responseBytes - 64 - 48 - 1;

t.test("watch buffer: the constants are README's", async (t) => {
  t.equal(WATCH_BUFFER_RESPONSES, 1024);
  t.equal(WATCH_BUFFER_BYTES, 16 * MiB);
});

t.test("watch buffer: 1,024 unread responses are buffered; the watcher whose 1,025th does not fit is parked at its revision", async (t) => {
  const { up, stream, watcher, event } = await unreadWatcher(t);
  for (let rev = 2n; rev < 2n + 1024n; rev++) up.respond(event(rev));
  await until(() => stream.bufferedResponses === 1024, "1,024 buffered");
  await tick(5);
  t.equal(stream.bufferedResponses, 1024, "exactly 1,024 responses buffered");
  t.equal(stream.parked.size, 0, "not parked at exactly 1,024");
  t.equal(watcher.nextRev, 1026n);
  up.respond(event(1026n));
  await until(() => stream.parked.size === 1, "parked");
  t.ok(stream.parked.has(watcher), "the 1,025th response parks the watcher");
  t.equal(stream.bufferedResponses, 1024, "nothing more was buffered");
  t.equal(watcher.nextRev, 1026n, "parked at the revision it has not got, so nothing is lost");
  t.equal(watcher.broadcast, undefined, "taken off its broadcast");
});

t.test("watch buffer: 16 MiB of unread responses are buffered; once at 16 MiB the next response parks the watcher", async (t) => {
  // Exactly 16 MiB: 16 responses of 1 MiB each.
  const at = await unreadWatcher(t);
  for (let i = 0; i < 16; i++) at.up.respond(at.event(BigInt(2 + i), valueFor(MiB)));
  await until(() => at.stream.bufferedResponses === 16, "16 buffered");
  await tick(5);
  t.equal(at.stream.parked.size, 0, "16 MiB buffered, not parked");
  at.up.respond(at.event(18n));
  await until(() => at.stream.parked.size === 1, "parked at 16 MiB");
  t.ok(at.stream.parked.has(at.watcher), "with 16 MiB buffered, even a small response parks the watcher");
  t.equal(at.stream.bufferedResponses, 16);
  t.equal(at.watcher.nextRev, 18n);

  // One byte under 16 MiB: the next response still goes in (a response is refused only once the buffer
  // holds 16 MiB or more; the one that crosses it is accepted whole), and the one after parks.
  const under = await unreadWatcher(t);
  for (let i = 0; i < 15; i++) under.up.respond(under.event(BigInt(2 + i), valueFor(MiB)));
  under.up.respond(under.event(17n, valueFor(MiB - 1)));
  await until(() => under.stream.bufferedResponses === 16, "16 buffered (16 MiB - 1)");
  under.up.respond(under.event(18n, valueFor(MiB)));
  await until(() => under.stream.bufferedResponses === 17, "17th accepted");
  await tick(5);
  t.equal(under.stream.parked.size, 0, "16 MiB - 1 byte buffered: the next response is accepted");
  under.up.respond(under.event(19n));
  await until(() => under.stream.parked.size === 1, "parked past 16 MiB");
  t.equal(under.stream.bufferedResponses, 17);
  t.equal(under.watcher.nextRev, 19n);
});
