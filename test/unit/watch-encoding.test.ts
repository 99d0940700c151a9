/**
 * The watch fan-out's own encoder must write exactly what toBinary writes, for any response the hub can
 * send, and shared event arrays must be what each watcher's filters would have made.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import t from "tap";
import { WatchResponseSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import { EventSchema, Event_EventType, KeyValueSchema, type Event } from "../../gen/mvccpb/kv_pb.js";
import { sharedEvents, watchResponseBinary } from "../../src/wire/watch-encoding.js";

const bytes = fc.uint8Array({ maxLength: 40 });
const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const revision = fc.bigInt({ min: 0n, max: 2n ** 62n });

const keyValue = fc.record({ key: bytes, value: bytes, createRevision: revision, modRevision: revision, version: revision, lease: int64 })
  .map((kv) => create(KeyValueSchema, kv));
const event = fc.record({ type: fc.constantFrom(Event_EventType.PUT, Event_EventType.DELETE), kv: keyValue, prevKv: fc.option(keyValue, { nil: undefined }) })
  .map((e) => create(EventSchema, e));
const header = fc.record({ clusterId: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), memberId: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), revision: int64, raftTerm: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) });
/** Mostly the event deliveries the hand encoder takes; now and then one of the other kinds. */
const rarely = <T>(usual: T, other: fc.Arbitrary<T>) => fc.oneof({ arbitrary: fc.constant(usual), weight: 9 }, { arbitrary: other, weight: 1 });
const watchResponse = fc.record({
  header: fc.option(header, { nil: undefined, freq: 10 }),
  watchId: fc.oneof(fc.constantFrom(0n, 1n, 127n, 128n, 16_383n, 16_384n, 2n ** 53n - 1n, 2n ** 53n), fc.bigInt({ min: 0n, max: 2n ** 40n }), int64),
  created: rarely(false, fc.constant(true)),
  canceled: rarely(false, fc.constant(true)),
  compactRevision: rarely(0n, revision),
  cancelReason: rarely("", fc.string({ maxLength: 10 })),
  fragment: fc.boolean(),
  events: fc.array(event, { minLength: 1, maxLength: 4 }),
}).map((r) => {
  const { events, ...rest } = r;
  const out = create(WatchResponseSchema, rest);
  out.events = events;
  return out;
});

t.test("byte for byte what toBinary writes, for any response", async (t) => {
  fc.assert(fc.property(watchResponse, (r) => {
    t.same(Buffer.from(watchResponseBinary(r)), Buffer.from(toBinary(WatchResponseSchema, r)));
  }), { numRuns: 500 });
  // Twice for the same objects: the kept encodings of header and events are still right.
  const r = fc.sample(watchResponse, 1)[0]!;
  r.created = false; r.canceled = false; r.compactRevision = 0n; r.cancelReason = "";
  t.same(Buffer.from(watchResponseBinary(r)), Buffer.from(watchResponseBinary(r)));
  t.same(Buffer.from(watchResponseBinary(r)), Buffer.from(toBinary(WatchResponseSchema, r)));
});

t.test("shared events: one array per filter, as each watcher's filters would make it", async (t) => {
  const kv = (k: string, rev: bigint) => create(KeyValueSchema, { key: new TextEncoder().encode(k), modRevision: rev });
  const upstream: Event[] = [
    create(EventSchema, { type: Event_EventType.PUT, kv: kv("a", 5n), prevKv: kv("a", 4n) }),
    create(EventSchema, { type: Event_EventType.DELETE, kv: kv("b", 5n), prevKv: kv("b", 3n) }),
  ];
  const plain = { noPut: false, noDelete: false, prevKv: false };
  const keepAll = () => true;
  const a = sharedEvents(upstream, plain, keepAll);
  t.equal(sharedEvents(upstream, { ...plain }, keepAll), a, "the same array for the same filter");
  t.equal(a.length, 2);
  t.ok(a.every((e) => e.prevKv === undefined), "prev_kv left out unless asked");
  t.equal(upstream[0]!.prevKv?.modRevision, 4n, "the upstream events are not changed");
  const withPrev = sharedEvents(upstream, { ...plain, prevKv: true }, keepAll);
  t.not(withPrev, a, "another filter, another array");
  t.equal(withPrev[1], upstream[1], "with prev_kv asked, the upstream event itself");
  const noDelete = sharedEvents(upstream, { ...plain, noDelete: true }, (e) => e.type !== Event_EventType.DELETE);
  t.same(noDelete.map((e) => e.type), [Event_EventType.PUT], "NODELETE drops the delete");
});
