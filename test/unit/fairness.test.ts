/**
 * --fairness' parts without a socket: flows named per certificate, user and address (wire/flow.ts); the
 * scheduler (upstream/client/fairness.ts): exempt calls never queue, a full queue refuses at once, a heavy
 * flow fills only its own queues, the quiet flow goes first, nothing waits beyond --fairness-max-wait;
 * seats of a Range and a Txn (services/seats.ts); /metrics rows bounded to the top flows and "other".
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import t from "tap";
import { RequestOpSchema, TxnRequestSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import { rangeSeats, txnSeats } from "../../src/services/seats.js";
import { Admission, deal, type FairnessOptions } from "../../src/upstream/client/fairness.js";
import { flowRows, TOP_FLOWS } from "../../src/upstream/client/fairness-metrics.js";
import type { CallerContext } from "../../src/wire/caller.js";
import { FLOW_SOURCES, flowOf, setCharge, type Peer } from "../../src/wire/flow.js";

const OPTS: FairnessOptions = { seats: 4, flowSeats: 4, queues: 16, handSize: 2, queueLength: 2, maxWaitMs: 5_000 };

/** A caller charged to `flow` for `seats` (no charge: exempt). */
function caller(flow: string | undefined, seats = 1, signal = new AbortController().signal): CallerContext {
  const requestHeader = new Headers();
  if (flow !== undefined) setCharge(requestHeader, { flow, seats });
  return { requestHeader, signal, timeoutMs: () => undefined };
}

/** A call to etcd that ends when told; `started` says whether it was sent. */
function pending() {
  let end!: () => void;
  const p = new Promise<string>((resolve) => { end = () => resolve("done"); });
  const call = { started: false, send: () => { call.started = true; return p; }, end };
  return call;
}

const flush = () => new Promise((r) => setImmediate(r));

/** Two flow names whose hands share no queue, and one whose hand is the first's. */
function flowsApart(o: FairnessOptions): [string, string] {
  const a = "heavy";
  const handA = deal(a, o.queues, o.handSize);
  for (let i = 0; ; i++) {
    const b = `quiet-${i}`;
    if (deal(b, o.queues, o.handSize).every((q) => !handA.includes(q))) return [a, b];
  }
}

t.test("flows: certificate subject, then the token's user, then the address", async (t) => {
  const certPeer: Peer = { remoteAddress: "::ffff:10.0.0.7", getPeerCertificate: () => ({ subject: { CN: "alice", O: "x" } }) };
  const plainPeer: Peer = { remoteAddress: "::ffff:10.0.0.8", getPeerCertificate: () => ({}) };
  const jwt = (user: string) => `e30.${Buffer.from(JSON.stringify({ username: user, revision: 3 })).toString("base64url")}.sig`;
  const h = (token?: string) => new Headers(token ? { token } : {});
  t.equal(flowOf(h(jwt("bob")), certPeer, FLOW_SOURCES), "cert:alice", "under mTLS the certificate's subject wins");
  t.equal(flowOf(h(jwt("bob")), plainPeer, FLOW_SOURCES), "user:bob", "a JWT's user");
  t.equal(flowOf(h(jwt("bob")), { remoteAddress: "10.0.0.9" }, FLOW_SOURCES), "user:bob", "the same user from another address is the same flow");
  t.not(flowOf(h(jwt("carol")), plainPeer, FLOW_SOURCES), "user:bob", "another user, another flow");
  const simple = flowOf(h("AbCdEfGhIjKlMnOp.42"), plainPeer, FLOW_SOURCES);
  t.match(simple, /^token:[0-9a-f]{12}$/, "a simple token is its own flow");
  t.notMatch(simple, /AbCdEf/, "the token itself never shows");
  t.not(flowOf(h("ZZZZZZZZZZZZZZZZ.43"), plainPeer, FLOW_SOURCES), simple, "another token, another flow");
  t.equal(flowOf(new Headers({ authorization: "AbCdEfGhIjKlMnOp.42" }), plainPeer, FLOW_SOURCES), simple, "the token in authorization counts as well");
  t.equal(flowOf(h(), plainPeer, FLOW_SOURCES), "addr:10.0.0.8", "no certificate, no token: the address");
  t.not(flowOf(h(), { remoteAddress: "10.0.0.9" }, FLOW_SOURCES), "addr:10.0.0.8", "another address, another flow");
  t.equal(flowOf(h(jwt("bob")), certPeer, ["address"]), "addr:10.0.0.7", "--fairness-flow=address ignores the rest");
  t.equal(flowOf(h(), undefined, FLOW_SOURCES), "unknown");
});

t.test("shuffle sharding: a hand is stable, of distinct queues, and hands differ between flows", async (t) => {
  const hand = deal("user:bob", 128, 6);
  t.same(deal("user:bob", 128, 6), hand, "the same name, the same hand");
  t.equal(new Set(hand).size, 6, "six distinct queues");
  t.ok(hand.every((q) => q >= 0 && q < 128));
  const same = Array.from({ length: 1000 }, (_, i) => deal(`addr:10.0.${i >> 8}.${i & 255}`, 128, 6).join()).filter((x) => x === hand.join());
  t.equal(same.length, 0, "no other of 1,000 flows got the same hand");
});

t.test("an exempt call (no charge) never queues, even when every seat is taken", async (t) => {
  const a = new Admission({ ...OPTS, seats: 1, flowSeats: 1 });
  const held = pending();
  const p = a.run(caller("x"), held.send)!;
  t.equal(a.inUse, 1);
  t.equal(a.run(caller(undefined), () => Promise.resolve("exempt")), undefined, "not charged: the caller sends it itself, at once");
  held.end();
  t.equal(await p, "done");
  t.equal(a.inUse, 0, "seats given back");
});

t.test("a full queue answers at once with ResourceExhausted naming the limit", async (t) => {
  const a = new Admission({ ...OPTS, seats: 1, flowSeats: 1, queues: 1, handSize: 1, queueLength: 1 });
  const held = pending();
  const first = a.run(caller("x"), held.send)!;
  const queued = pending();
  const second = a.run(caller("x"), queued.send)!;
  await flush();
  t.notOk(queued.started, "the second call waits for the seat");
  const err = await a.run(caller("y"), () => Promise.resolve("never"))!.catch((e: unknown) => e as ConnectError);
  t.ok(err instanceof ConnectError);
  t.equal((err as ConnectError).code, Code.ResourceExhausted);
  t.match((err as ConnectError).rawMessage, /--fairness-queue-length=1/);
  t.equal((err as ConnectError).metadata.get("retry-after"), "1");
  t.equal(a.flows.get("y")!.rejected, 1, "counted on the refused flow");
  held.end();
  await first;
  await flush();
  t.ok(queued.started, "the waiting call runs when the seat is free");
  queued.end();
  t.equal(await second, "done");
});

t.test("a heavy flow fills only its own queues; the quiet flow's call goes first", async (t) => {
  const o = { ...OPTS, seats: 2, flowSeats: 2 };
  const [heavy, quiet] = flowsApart(o);
  const a = new Admission(o);
  const running = [pending(), pending()];
  const inFlight = running.map((c) => a.run(caller(heavy), c.send)!);
  const waiting = Array.from({ length: o.handSize * o.queueLength }, () => pending());
  const waited = waiting.map((c) => a.run(caller(heavy), c.send)!);
  const refused = await a.run(caller(heavy), () => Promise.resolve("x"))!.catch((e: unknown) => e as ConnectError);
  t.equal((refused as ConnectError).code, Code.ResourceExhausted, "the heavy flow's queues are full: refused");
  const q = pending();
  const quietCall = a.run(caller(quiet), q.send)!;
  await flush();
  t.notOk(q.started, "no seat free yet");
  t.equal(a.flows.get(quiet)!.rejected, 0, "the quiet flow is not refused: its queues are its own");
  running[0]!.end();
  await inFlight[0];
  await flush();
  t.ok(q.started, "the freed seat goes to the quiet flow, ahead of the heavy flow's earlier calls");
  t.equal(waiting.filter((c) => c.started).length, 0);
  q.end();
  await quietCall;
  running[1]!.end();
  for (const c of waiting) c.end();
  await Promise.all([...inFlight, ...waited]);
  t.equal(a.inUse, 0);
  t.equal(a.waiting, 0);
});

t.test("one flow holds at most --fairness-flow-seats; another flow starts at once beside it", async (t) => {
  const a = new Admission({ ...OPTS, seats: 4, flowSeats: 2 });
  const calls = [pending(), pending(), pending()];
  const ps = calls.map((c) => a.run(caller("heavy"), c.send)!);
  await flush();
  t.same(calls.map((c) => c.started), [true, true, false], "the third waits: the flow holds its two seats");
  const other = pending();
  const p = a.run(caller("other"), other.send)!;
  await flush();
  t.ok(other.started, "another flow does not wait");
  other.end();
  calls.forEach((c) => c.end());
  await Promise.all([...ps, p]);
});

t.test("a wide call waits for all its seats and is not overtaken for ever", async (t) => {
  const a = new Admission({ ...OPTS, seats: 4, flowSeats: 4 });
  const small = pending();
  const ps = [a.run(caller("s", 1), small.send)!];
  const wide = pending();
  ps.push(a.run(caller("w", 4), wide.send)!);
  await flush();
  t.notOk(wide.started, "4 seats are not free");
  small.end();
  await flush();
  t.ok(wide.started);
  t.equal(a.inUse, 4);
  wide.end();
  await Promise.all(ps);
});

t.test("nothing waits without a bound: --fairness-max-wait, and the caller's cancellation", async (t) => {
  const a = new Admission({ ...OPTS, seats: 1, flowSeats: 1, maxWaitMs: 50 });
  const held = pending();
  const first = a.run(caller("x"), held.send)!;
  const late = await a.run(caller("y"), () => Promise.resolve("never"))!.catch((e: unknown) => e as ConnectError);
  t.equal((late as ConnectError).code, Code.ResourceExhausted);
  t.match((late as ConnectError).rawMessage, /--fairness-max-wait=50ms/);
  const abort = new AbortController();
  const canceled = a.run(caller("z", 1, abort.signal), () => Promise.resolve("never"))!;
  abort.abort(new ConnectError("client went away", Code.Canceled));
  t.equal((await canceled.catch((e: unknown) => e as ConnectError) as ConnectError).code, Code.Canceled);
  t.equal(a.waiting, 0, "left the queue");
  const gone = new AbortController();
  gone.abort(new ConnectError("client went away", Code.Canceled));
  const never = await a.run(caller("z", 1, gone.signal), () => Promise.resolve("never"))!.catch((e: unknown) => e as ConnectError);
  t.equal((never as ConnectError).code, Code.Canceled, "a caller already gone does not queue");
  t.equal(a.waiting, 0);
  held.end();
  await first;
});

t.test("seats: a Range by its expected keys, a Txn by its ops", async (t) => {
  t.equal(rangeSeats(undefined, 0n), 1, "not seen lately: one seat");
  t.equal(rangeSeats(1, 0n), 1);
  t.equal(rangeSeats(250, 0n), 3, "one seat per 100 keys");
  t.equal(rangeSeats(10_000, 0n), 10, "at most 10");
  t.equal(rangeSeats(10_000, 50n), 1, "bounded by its limit");
  const put = create(RequestOpSchema, { request: { case: "requestPut", value: {} } });
  t.equal(txnSeats(create(TxnRequestSchema, {})), 1);
  t.equal(txnSeats(create(TxnRequestSchema, { success: [put, put, put], failure: [put] })), 3, "the longer branch");
  t.equal(txnSeats(create(TxnRequestSchema, { success: Array(64).fill(put) })), 10);
});

t.test("/metrics rows: the top flows by cost and \"other\" for the rest", async (t) => {
  const a = new Admission({ ...OPTS, seats: 1000, flowSeats: 1000 });
  for (let i = 0; i < 30; i++) {
    for (let k = 0; k <= i; k++) await a.run(caller(`flow-${i}`), () => Promise.resolve(1));
  }
  const rows = flowRows(a);
  t.equal(rows.length, TOP_FLOWS + 1);
  t.equal(rows[0]!.flow, "flow-29", "the costliest first");
  t.equal(rows.at(-1)!.flow, "other");
  t.notOk(rows.some((r) => r.flow === "flow-0"), "a cheap flow is in other");
});
