/** The invalidation watch's life: live → feeds the cache; refused, broken, compacted → cache off, then restart. */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import t from "tap";
import { WatchResponseSchema, type WatchRequest, type WatchResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { Event_EventType, EventSchema } from "../../gen/mvccpb/kv_pb.js";
import { CacheInvalidator } from "../../src/upstream/kv/cache-invalidator.js";
import { keyString } from "../../src/upstream/client/key-ranges.js";
import { fakeUpstream, tick } from "../helpers/fake-upstream.js";
import { created, recorder } from "../helpers/invalidation-sink.js";

const enc = (s: string) => new TextEncoder().encode(s);


const event = (key: string, rev: bigint, del = false) => create(EventSchema, { type: del ? Event_EventType.DELETE : Event_EventType.PUT, kv: { key: enc(key), modRevision: rev } });

t.test("watches the whole keyspace from now, feeds events, restarts cleared after a compaction cancel", async (t) => {
  const fake = fakeUpstream();
  const { log, sink } = recorder();
  const inv = new CacheInvalidator(fake.up, sink, { retryMinMs: 1, authProbeMs: 60_000 });
  t.teardown(() => inv.close());
  inv.start();
  const s1 = await fake.nextStream<WatchRequest, WatchResponse>();
  await s1.untilSent(1);
  const req = s1.sent[0]!.requestUnion;
  t.equal(req.case, "createRequest");
  if (req.case === "createRequest") {
    t.equal(keyString(req.value.key), "\0");
    t.equal(keyString(req.value.rangeEnd), "\0", 'range_end "\\0": all keys');
    t.equal(req.value.startRevision, 0n, "from the current revision");
  }
  s1.respond(created(7n));
  s1.respond(create(WatchResponseSchema, { header: { revision: 9n }, events: [event("a", 8n), event("b", 9n, true)] }));
  s1.respond(create(WatchResponseSchema, { header: { revision: 12n } }));
  s1.respond(create(WatchResponseSchema, { header: { revision: 12n }, canceled: true, compactRevision: 11n }));
  const s2 = await fake.nextStream<WatchRequest, WatchResponse>();
  t.ok(s1.signal.aborted || s1.ended, "the compacted watch is closed");
  s2.respond(created(20n));
  await tick(5);
  t.same(log, ["enable 7", "invalidate a 8", "invalidate b 9", "advance 9", "advance 12", "disable", "enable 20"]);
  t.equal(inv.established, 2);
});

t.test("a refused watch (auth on, no credentials) leaves the cache off and is retried", async (t) => {
  const fake = fakeUpstream();
  const { log, sink } = recorder();
  const inv = new CacheInvalidator(fake.up, sink, { retryMinMs: 1, retryMaxMs: 2, authProbeMs: 60_000 });
  t.teardown(() => inv.close());
  inv.start();
  const s1 = await fake.nextStream<WatchRequest, WatchResponse>();
  s1.respond(create(WatchResponseSchema, { watchId: -1n, created: true, canceled: true, cancelReason: "etcdserver: permission denied" }));
  const s2 = await fake.nextStream<WatchRequest, WatchResponse>();
  s2.fail(new ConnectError("connection refused", Code.Unavailable));
  const s3 = await fake.nextStream<WatchRequest, WatchResponse>();
  s3.respond(created(5n));
  await tick(5);
  t.same(log, ["disable", "disable", "enable 5"]);
});

t.test("auth switched on behind the watch: the probe ends it and the cache goes off", async (t) => {
  const fake = fakeUpstream();
  const { log, sink } = recorder();
  fake.unary = () => Promise.reject(new ConnectError("etcdserver: authentication is not enabled", Code.FailedPrecondition));
  const inv = new CacheInvalidator(fake.up, sink, { retryMinMs: 1000, authProbeMs: 5 });
  t.teardown(() => inv.close());
  inv.start();
  const s1 = await fake.nextStream<WatchRequest, WatchResponse>();
  s1.respond(created(3n));
  await tick(20);
  t.same(log, ["enable 3"], "probes pass while auth is off");
  fake.unary = () => Promise.reject(new ConnectError("etcdserver: no leader", Code.Unavailable));
  await tick(20);
  t.same(log, ["enable 3"], "etcd answering with another error (no leader) says nothing about auth");
  t.ok(fake.unaryCalls > 0);
  fake.unary = () => Promise.reject(new ConnectError("etcdserver: authentication failed, invalid user ID or password", Code.InvalidArgument));
  await tick(30);
  t.same(log, ["enable 3", "disable"]);
  t.ok(s1.signal.aborted, "the upstream watch was cancelled");
});

t.test("etcd not answering the probe at all (a silently dead connection) turns the cache off", async (t) => {
  const fake = fakeUpstream();
  const { log, sink } = recorder();
  fake.unary = () => Promise.reject(new ConnectError("etcdserver: authentication is not enabled", Code.FailedPrecondition));
  const inv = new CacheInvalidator(fake.up, sink, { retryMinMs: 1000, authProbeMs: 5 });
  t.teardown(() => inv.close());
  inv.start();
  const s1 = await fake.nextStream<WatchRequest, WatchResponse>();
  s1.respond(created(3n));
  await tick(20);
  fake.unary = () => Promise.reject(new ConnectError("the operation timed out", Code.DeadlineExceeded));
  await tick(30);
  t.same(log, ["enable 3", "disable"]);
});
