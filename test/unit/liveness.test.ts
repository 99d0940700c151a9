/**
 * upstream/client/liveness.ts: which calls a Status answer ends (only those that waited a tick and began
 * in an older, known raft term), and that an endpoint that does not answer is reported down, even one
 * already marked down while calls are still sent to it.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import t from "tap";
import type { EtcdClients } from "../../src/upstream/client/clients.js";
import { checkEndpoint, isLeaderChange, LIVENESS_TICK_MS, type CallInFlight, type Watched } from "../../src/upstream/client/liveness.js";

function endpoint(status: () => Promise<{ raftTerm: bigint }>, up = true): Watched {
  const clients = { maintenance: { status } } as unknown as EtcdClients;
  return { url: "http://e", clients, up, calls: new Set(), streams: new Set(), leaderBound: new Set(), checking: false, checkedAt: 0 };
}

function call(ageMs: number, term: bigint): CallInFlight {
  return { abort: new AbortController(), since: Date.now() - ageMs, term };
}

const settle = () => new Promise((r) => setImmediate(r));

t.test("a newer raft term ends only calls that waited a tick and began in a known older term", async (t) => {
  const ep = endpoint(async () => ({ raftTerm: 6n }));
  const spanning = call(LIVENESS_TICK_MS + 50, 5n);
  const fresh = call(0, 5n);
  const unknownTerm = call(LIVENESS_TICK_MS + 50, 0n);
  const current = call(LIVENESS_TICK_MS + 50, 6n);
  for (const c of [spanning, fresh, unknownTerm, current]) ep.calls.add(c);
  const terms: bigint[] = [];
  checkEndpoint(ep, 1000, () => t.fail("not down"), (term) => terms.push(term));
  await settle();
  t.ok(spanning.abort.signal.aborted, "the call that spanned the change ends");
  const why = spanning.abort.signal.reason as ConnectError;
  t.equal(why.code, Code.Unavailable);
  t.ok(isLeaderChange(why), "marked as a leader change (its endpoint is not down)");
  t.notOk(fresh.abort.signal.aborted, "a call sent a moment ago is left alone");
  t.notOk(unknownTerm.abort.signal.aborted, "a call sent while the term was unknown is left alone");
  t.notOk(current.abort.signal.aborted, "a call of the current term is left alone");
  t.same(terms, [6n]);
});

t.test("no answer within the interval: the endpoint is reported down, also when already marked down", async (t) => {
  for (const up of [true, false]) {
    const ep = endpoint(() => Promise.reject(new ConnectError("timed out", Code.DeadlineExceeded)), up);
    ep.calls.add(call(LIVENESS_TICK_MS + 50, 0n));
    let down: ConnectError | undefined;
    checkEndpoint(ep, 1000, (_ep, why) => { down = why; }, () => {});
    await settle();
    t.equal(down?.code, Code.Unavailable, `up=${up}: reported down`);
  }
});

t.test("an answer that is etcd's own error is not a dead endpoint; nothing open: nothing asked", async (t) => {
  const ep = endpoint(() => Promise.reject(new ConnectError("etcdserver: permission denied", Code.PermissionDenied)));
  ep.calls.add(call(LIVENESS_TICK_MS + 50, 0n));
  checkEndpoint(ep, 1000, () => t.fail("not down"), () => {});
  await settle();
  let asked = false;
  const idle = endpoint(async () => { asked = true; return { raftTerm: 1n }; });
  checkEndpoint(idle, 1000, () => {}, () => {});
  await settle();
  t.notOk(asked, "an endpoint with no calls or streams is not asked");
});
