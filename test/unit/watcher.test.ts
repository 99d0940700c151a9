/**
 * One client watcher's view of its broadcast's responses: filters, prev_kv, the nextRev bookkeeping that
 * makes a shared upstream watch exact, a full buffer, progress notifications and fragments. Pure logic:
 * the client stream is a fake that only buffers.
 */
import { create } from "@bufbuild/protobuf";
import t from "tap";
import { WatchCreateRequestSchema, WatchCreateRequest_FilterType, WatchResponseSchema, type WatchResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { EventSchema, Event_EventType } from "../../gen/mvccpb/kv_pb.js";
import type { WatchStream } from "../../src/upstream/watch/watch-stream.js";
import { isEmptyRange, Watcher, watcherSpec } from "../../src/upstream/watch/watcher.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

class FakeStream {
  out: WatchResponse[] = [];
  full = false;
  offer(rs: WatchResponse[]): boolean {
    if (this.full) return false;
    this.out.push(...rs);
    return true;
  }
}

function watcher(init: Parameters<typeof create<typeof WatchCreateRequestSchema>>[1], nextRev: bigint) {
  const stream = new FakeStream();
  const w = new Watcher(stream as unknown as WatchStream, watcherSpec(create(WatchCreateRequestSchema, { key: enc("k"), ...init })));
  w.id = 3n;
  w.createdSent = true;
  w.nextRev = nextRev;
  return { w, stream };
}

const ev = (type: Event_EventType, key: string, rev: bigint, value = "v", prev?: string) => create(EventSchema, {
  type,
  kv: { key: enc(key), value: enc(value), modRevision: rev, createRevision: 1n, version: 1n },
  ...(prev !== undefined ? { prevKv: { key: enc(key), value: enc(prev), modRevision: rev - 1n } } : {}),
});
const resp = (rev: bigint, ...events: ReturnType<typeof ev>[]) => create(WatchResponseSchema, { header: { revision: rev }, watchId: 99n, events });
const flat = (rs: WatchResponse[]) => rs.flatMap((r) => r.events.map((e) => `${e.type === Event_EventType.PUT ? "PUT" : "DEL"} ${dec(e.kv!.key)}@${e.kv!.modRevision}${e.prevKv ? ` prev=${dec(e.prevKv.value)}` : ""}`));

t.test("the create request as etcd normalises it", async (t) => {
  t.same(watcherSpec(create(WatchCreateRequestSchema, {})).key, new Uint8Array([0]), "empty key is \\0");
  const spec = (key: string, rangeEnd: string) => watcherSpec(create(WatchCreateRequestSchema, { key: enc(key), rangeEnd: enc(rangeEnd) }));
  t.ok(isEmptyRange(spec("b", "a")) && isEmptyRange(spec("a", "a")), "range_end <= key is etcd's empty range");
  t.notOk(isEmptyRange(spec("a", "")) || isEmptyRange(spec("a", "\0")) || isEmptyRange(spec("a", "b")), "one key, from-key and a real range are not");
});

t.test("filters and prev_kv per watcher, on the broadcast's unfiltered prev_kv stream", async (t) => {
  const all = resp(5n, ev(Event_EventType.PUT, "k", 5n, "v", "old"), ev(Event_EventType.DELETE, "k/x", 5n, "", "gone"));
  const plain = watcher({}, 1n);
  plain.w.deliver(all, 5n);
  t.same(flat(plain.stream.out), ["PUT k@5", "DEL k/x@5"], "no prev_kv unless asked; a txn's events in one response");
  t.equal(plain.stream.out.length, 1, "one response for one revision");
  t.equal(plain.stream.out[0]!.watchId, 3n, "with the client's watch_id");
  const prev = watcher({ prevKv: true, filters: [WatchCreateRequest_FilterType.NODELETE] }, 1n);
  prev.w.deliver(all, 5n);
  t.same(flat(prev.stream.out), ["PUT k@5 prev=old"], "NODELETE drops deletes; prev_kv kept when asked");
  const noput = watcher({ filters: [WatchCreateRequest_FilterType.NOPUT, WatchCreateRequest_FilterType.NODELETE] }, 1n);
  noput.w.deliver(all, 5n);
  t.same(noput.stream.out, [], "a response left empty is not sent");
  t.equal(noput.w.nextRev, 6n, "but the watcher has moved past it");
});

t.test("nextRev: every event at or after it once, nothing older", async (t) => {
  const { w, stream } = watcher({}, 7n);
  w.deliver(resp(8n, ev(Event_EventType.PUT, "k", 6n), ev(Event_EventType.PUT, "k", 7n), ev(Event_EventType.PUT, "k", 8n)), 8n);
  t.same(flat(stream.out), ["PUT k@7", "PUT k@8"], "older events dropped");
  w.deliver(resp(8n, ev(Event_EventType.PUT, "k", 8n)), 8n);
  t.same(flat(stream.out), ["PUT k@7", "PUT k@8"], "a replay (after a merge or re-attach) is not sent twice");
  stream.full = true;
  t.notOk(w.deliver(resp(9n, ev(Event_EventType.PUT, "k", 9n)), 9n), "a full buffer refuses");
  t.equal(w.nextRev, 9n, "and the watcher stays at the revision it has not got");
  stream.full = false;
  t.ok(w.deliver(resp(9n, ev(Event_EventType.PUT, "k", 9n)), 9n));
  t.same(flat(stream.out), ["PUT k@7", "PUT k@8", "PUT k@9"], "so nothing is lost");
});

t.test("progress notifications only for watchers that asked, never going back", async (t) => {
  const asked = watcher({ progressNotify: true }, 10n);
  asked.w.lastRev = 9n;
  asked.w.deliver(resp(12n), 12n);
  asked.w.deliver(resp(11n), 12n);
  t.same(asked.stream.out.map((r) => r.header!.revision), [12n], "forwarded once, never below what was sent");
  t.equal(asked.w.nextRev, 13n, "and it moves nextRev");
  const quiet = watcher({}, 10n);
  quiet.w.deliver(resp(12n), 12n);
  t.same(quiet.stream.out, [], "not forwarded to a watcher that did not ask");
  const full = watcher({ progressNotify: true }, 10n);
  full.stream.full = true;
  t.ok(full.w.deliver(resp(12n), 12n), "a hint is dropped, not parked, when the buffer is full");
});

t.test("fragment: split above etcd's limit, never inside an event", async (t) => {
  const big = "x".repeat(700 * 1024);
  const r = resp(5n, ...["a", "b", "c", "d", "e"].map((k) => ev(Event_EventType.PUT, k, 5n, big)));
  const frag = watcher({ fragment: true }, 1n);
  frag.w.deliver(r, 5n);
  t.ok(frag.stream.out.length > 1, `split into ${frag.stream.out.length}`);
  t.same(frag.stream.out.map((x) => x.fragment), [...frag.stream.out.slice(1).map(() => true), false], "fragment set on all but the last");
  t.same(flat(frag.stream.out), flat([r]), "all events, in order");
  const whole = watcher({}, 1n);
  whole.w.deliver(r, 5n);
  t.equal(whole.stream.out.length, 1, "one response when fragment was not asked");
});
