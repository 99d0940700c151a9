/**
 * authChanging (called by the Auth service around AuthEnable): the range cache is off at once and its
 * invalidation watch starts over, refused once auth is on; a created answer already on its way cannot
 * turn the cache back on; an AuthEnable etcd refused leaves the cache serving again. A fake upstream.
 */
import { create } from "@bufbuild/protobuf";
import t from "tap";
import { WatchResponseSchema, type WatchRequest, type WatchResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { authChanging, CacheInvalidator } from "../../src/upstream/kv/cache-invalidator.js";
import { fakeUpstream, tick } from "../helpers/fake-upstream.js";
import { created, recorder } from "../helpers/invalidation-sink.js";


const refused = create(WatchResponseSchema, { watchId: -1n, created: true, canceled: true, cancelReason: "rpc error: code = InvalidArgument desc = etcdserver: user name is empty" });

t.test("while the watch is live: the cache is off before authChanging returns, and the re-created watch is refused", async (t) => {
  const fake = fakeUpstream();
  const { log, sink } = recorder();
  const inv = new CacheInvalidator(fake.up, sink, { retryMinMs: 1, retryMaxMs: 2, authProbeMs: 60_000 });
  t.teardown(() => inv.close());
  inv.start();
  const s1 = await fake.nextStream<WatchRequest, WatchResponse>();
  s1.respond(created(3n));
  await tick(5);
  t.same(log, ["enable 3"]);
  authChanging(fake.up);
  t.same(log, ["enable 3", "disable"], "off synchronously");
  const s2 = await fake.nextStream<WatchRequest, WatchResponse>();
  t.ok(s1.signal.aborted, "the live watch is ended");
  s2.respond(refused);
  await tick(5);
  t.notOk(log.slice(1).some((l) => l.startsWith("enable")), `never on again: ${log.join(", ")}`);
});

t.test("a created answer already on its way when auth changes does not turn the cache on", async (t) => {
  const fake = fakeUpstream();
  const { log, sink } = recorder();
  const inv = new CacheInvalidator(fake.up, sink, { retryMinMs: 1, retryMaxMs: 2, authProbeMs: 60_000 });
  t.teardown(() => inv.close());
  inv.start();
  const s1 = await fake.nextStream<WatchRequest, WatchResponse>();
  s1.respond(created(3n)); // created before etcd applied auth enable, delivered after authChanging
  authChanging(fake.up);
  const s2 = await fake.nextStream<WatchRequest, WatchResponse>();
  await tick(5);
  t.notOk(log.some((l) => l.startsWith("enable")), `not enabled: ${log.join(", ")}`);
  // The AuthEnable failed (no root user, say): the next watch is accepted and the cache serves again.
  s2.respond(created(4n));
  await tick(5);
  t.equal(log.at(-1), "enable 4");
});

t.test("authChanging reaches only the invalidators of that upstream, and not closed ones", async (t) => {
  const [a, b] = [fakeUpstream(), fakeUpstream()];
  const ra = recorder();
  const rb = recorder();
  const ia = new CacheInvalidator(a.up, ra.sink, { retryMinMs: 1, authProbeMs: 60_000 });
  const ib = new CacheInvalidator(b.up, rb.sink, { retryMinMs: 1, authProbeMs: 60_000 });
  t.teardown(() => { ia.close(); ib.close(); });
  ia.start();
  ib.start();
  (await a.nextStream<WatchRequest, WatchResponse>()).respond(created(1n));
  (await b.nextStream<WatchRequest, WatchResponse>()).respond(created(1n));
  await tick(5);
  authChanging(a.up);
  t.same(rb.log, ["enable 1"], "the other upstream's cache is untouched");
  ia.close();
  const before = ra.log.length;
  authChanging(a.up);
  t.equal(ra.log.length, before, "a closed invalidator is not called");
});
