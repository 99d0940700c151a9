/** Keep-alive N→1 logic: sharing, routing, half-close, disconnect, resend after a break, bounds. */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import t from "tap";
import { LeaseKeepAliveRequestSchema, LeaseKeepAliveResponseSchema, type LeaseKeepAliveRequest, type LeaseKeepAliveResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { LeaseHub } from "../../src/upstream/lease/lease-hub.js";
import { PushQueue } from "../../src/upstream/client/push-queue.js";
import { fakeUpstream, tick } from "../helpers/fake-upstream.js";

/** One client stream: push keep-alives, read replies. */
function client(hub: LeaseHub) {
  const requests = new PushQueue<LeaseKeepAliveRequest>(100);
  const abort = new AbortController();
  const replies: LeaseKeepAliveResponse[] = [];
  let error: ConnectError | undefined;
  let ended = false;
  const done = (async () => {
    try {
      for await (const r of hub.serve(requests, abort.signal)) replies.push(r);
      ended = true;
    } catch (e) {
      error = ConnectError.from(e);
    }
  })();
  return {
    ask: (id: bigint) => requests.push(create(LeaseKeepAliveRequestSchema, { ID: id })),
    halfClose: () => requests.close(),
    disconnect: () => abort.abort(),
    replies, done,
    get error() { return error; },
    get ended() { return ended; },
  };
}

const reply = (id: bigint, ttl: bigint) => create(LeaseKeepAliveResponseSchema, { header: { revision: 1n }, ID: id, TTL: ttl });
const ids = (reqs: LeaseKeepAliveRequest[]) => reqs.map((r) => r.ID);

t.test("keep-alives for one lease from many streams: sent once, every asker answered when etcd answers", async (t) => {
  const fake = fakeUpstream();
  const hub = new LeaseHub(fake.up);
  t.teardown(() => hub.close());
  const a = client(hub);
  const b = client(hub);
  const c = client(hub);
  a.ask(1n);
  const up = await fake.nextStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse>();
  await up.untilSent(1);
  b.ask(1n);
  b.ask(1n);
  c.ask(2n);
  await up.untilSent(2);
  await tick();
  t.same(ids(up.sent), [1n, 2n], "lease 1 was in flight: the later asks joined it");
  t.equal(a.replies.length + b.replies.length, 0, "nothing before etcd answers");
  up.respond(reply(1n, 30n));
  await tick();
  t.same(a.replies.map((r) => r.TTL), [30n]);
  t.same(b.replies.map((r) => r.TTL), [30n, 30n], "one reply per keep-alive asked");
  t.same(c.replies, [], "another lease's stream is not answered by lease 1");
  up.respond(reply(2n, 0n));
  await tick();
  t.same(c.replies.map((r) => [r.ID, r.TTL]), [[2n, 0n]], "etcd's TTL 0 for an unknown lease passes through");
  a.ask(1n);
  await up.untilSent(3);
  t.same(ids(up.sent), [1n, 2n, 1n], "answered: the next ask is sent again");
  t.equal(fake.streams.length, 1, "one upstream stream for all client streams");
  t.equal(hub.clientStreams, 3);
  t.equal(hub.upstreamStreams, 1);
});

t.test("nothing is sent that no client asked for", async (t) => {
  const fake = fakeUpstream();
  const hub = new LeaseHub(fake.up);
  t.teardown(() => hub.close());
  const a = client(hub);
  a.ask(5n);
  const up = await fake.nextStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse>();
  up.respond(reply(5n, 10n));
  await tick(30);
  t.same(ids(up.sent), [5n], "no renewal on a schedule of the proxy's");
});

t.test("half-close: pending keep-alives are answered, then the stream ends OK", async (t) => {
  const fake = fakeUpstream();
  const hub = new LeaseHub(fake.up);
  t.teardown(() => hub.close());
  const a = client(hub);
  a.ask(1n);
  a.ask(2n);
  a.halfClose();
  const up = await fake.nextStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse>();
  await up.untilSent(2);
  await tick();
  t.notOk(a.ended, "still waiting for etcd");
  up.respond(reply(1n, 10n));
  up.respond(reply(2n, 10n));
  await a.done;
  t.ok(a.ended, "ended without error");
  t.equal(a.replies.length, 2);
  await tick();
  t.ok(up.requestsClosed, "no client left: the upstream stream is half-closed");
});

t.test("a client that goes away drops its waiters; others still get their reply", async (t) => {
  const fake = fakeUpstream();
  const hub = new LeaseHub(fake.up);
  t.teardown(() => hub.close());
  const a = client(hub);
  const b = client(hub);
  a.ask(1n);
  b.ask(1n);
  const up = await fake.nextStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse>();
  await up.untilSent(1);
  a.disconnect();
  await a.done;
  up.respond(reply(1n, 10n));
  await tick();
  t.equal(a.replies.length, 0);
  t.equal(b.replies.length, 1);
  t.equal(hub.clientStreams, 1);
});

t.test("a broken upstream stream: in-flight keep-alives are sent again on a new one", async (t) => {
  const fake = fakeUpstream();
  const hub = new LeaseHub(fake.up, { resendBackoffMs: 1 });
  t.teardown(() => hub.close());
  const a = client(hub);
  a.ask(1n);
  a.ask(2n);
  const up1 = await fake.nextStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse>();
  await up1.untilSent(2);
  up1.respond(reply(1n, 10n));
  up1.fail(new ConnectError("connection reset", Code.Unavailable));
  const up2 = await fake.nextStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse>();
  await up2.untilSent(1);
  t.same(ids(up2.sent), [2n], "only the unanswered one is resent");
  up2.respond(reply(2n, 10n));
  await tick();
  t.same(a.replies.map((r) => r.ID), [1n, 2n]);
  t.equal(a.error, undefined);
});

t.test("an upstream that keeps failing: after maxResends the waiting clients get etcd's error", async (t) => {
  const fake = fakeUpstream();
  const hub = new LeaseHub(fake.up, { resendBackoffMs: 1, maxResends: 2 });
  t.teardown(() => hub.close());
  const a = client(hub);
  a.ask(1n);
  for (let i = 0; i < 3; i++) (await fake.nextStream()).fail(new ConnectError("etcdserver: no leader", Code.Unavailable));
  await a.done;
  t.equal(a.error?.code, Code.Unavailable);
  t.equal(a.error?.rawMessage, "etcdserver: no leader");
});

t.test("bounds: too many unanswered keep-alives ends that stream ResourceExhausted, others unaffected", async (t) => {
  const fake = fakeUpstream();
  const hub = new LeaseHub(fake.up, { maxPendingPerStream: 2, maxWaiters: 3 });
  t.teardown(() => hub.close());
  const a = client(hub);
  const b = client(hub);
  a.ask(1n);
  a.ask(2n);
  a.ask(3n);
  await a.done;
  t.equal(a.error?.code, Code.ResourceExhausted, "per-stream bound");
  b.ask(1n);
  b.ask(1n);
  b.ask(1n);
  b.ask(1n);
  await b.done;
  t.equal(b.error?.code, Code.ResourceExhausted, "per-stream bound again (2)");
  const c = client(hub);
  const d = client(hub);
  c.ask(7n); c.ask(8n);
  d.ask(9n); d.ask(10n);
  await d.done;
  t.equal(d.error?.code, Code.ResourceExhausted, "the proxy-wide bound (3) refuses the stream that overflows it");
  t.equal(c.error, undefined);
  t.match(d.error?.rawMessage ?? "", /3 keep-alives/);
});

t.test("keepAliveOnce: one keep-alive through the shared stream", async (t) => {
  const fake = fakeUpstream();
  const hub = new LeaseHub(fake.up);
  t.teardown(() => hub.close());
  const caller = { requestHeader: new Headers(), signal: new AbortController().signal, timeoutMs: () => undefined };
  const once = hub.keepAliveOnce(caller, create(LeaseKeepAliveRequestSchema, { ID: 4n }));
  const up = await fake.nextStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse>();
  await up.untilSent(1);
  up.respond(reply(4n, 9n));
  t.equal((await once).TTL, 9n);
  await t.rejects(hub.keepAliveOnce(caller, create(LeaseKeepAliveRequestSchema, { ID: 5n }), 20), { code: Code.DeadlineExceeded });
});
