/** Single-flight rules: serializable joins a call in flight; linearizable only one not yet sent. */
import t from "tap";
import { intervalOf, pointOf } from "../../src/upstream/client/key-ranges.js";
import { SingleFlight } from "../../src/upstream/kv/single-flight.js";

const enc = (s: string) => new TextEncoder().encode(s);

/** A fake upstream call we resolve by hand, counting sends. */
function upstream() {
  const sent: { resolve: (v: string) => void; reject: (e: unknown) => void; signal: AbortSignal }[] = [];
  const call = (signal: AbortSignal) => new Promise<string>((resolve, reject) => { sent.push({ resolve, reject, signal }); });
  return { sent, call };
}

/** A scheduler under the test's control: linearizable calls are sent when `flush` runs. */
function manualSchedule() {
  const queue: (() => void)[] = [];
  return { schedule: (fn: () => void) => queue.push(fn), flush: () => queue.splice(0).forEach((fn) => fn()) };
}

const never = new AbortController().signal;
const k = pointOf(enc("k"));

t.test("serializable: callers join a call already sent", async (t) => {
  const f = new SingleFlight<string>();
  const up = upstream();
  const a = f.run("k", "serializable", k, never, up.call);
  t.equal(up.sent.length, 1, "sent at once");
  const b = f.run("k", "serializable", k, never, up.call);
  t.equal(up.sent.length, 1, "the second caller joined the call in flight");
  up.sent[0]!.resolve("v1");
  t.same(await Promise.all([a, b]), ["v1", "v1"]);
  t.equal(f.shared, 1);
  const c = f.run("k", "serializable", k, never, up.call);
  t.equal(up.sent.length, 2, "after the answer a new call is made");
  up.sent[1]!.resolve("v2");
  t.equal(await c, "v2");
});

t.test("linearizable: callers join only a call not yet sent", async (t) => {
  const s = manualSchedule();
  const f = new SingleFlight<string>({ schedule: s.schedule });
  const up = upstream();
  const a = f.run("k", "linearizable", k, never, up.call);
  const b = f.run("k", "linearizable", k, never, up.call);
  t.equal(up.sent.length, 0, "held back until the turn ends");
  s.flush();
  t.equal(up.sent.length, 1, "one call for both");
  const c = f.run("k", "linearizable", k, never, up.call);
  s.flush();
  t.equal(up.sent.length, 2, "a caller after the send gets its own call, never the one in flight");
  up.sent[0]!.resolve("old");
  up.sent[1]!.resolve("new");
  t.same(await Promise.all([a, b, c]), ["old", "old", "new"]);
  t.equal(f.shared, 1);
});

t.test("the default schedule batches callers of the same turn", async (t) => {
  const f = new SingleFlight<string>();
  const up = upstream();
  const calls = [1, 2, 3].map(() => f.run("k", "linearizable", k, never, up.call));
  t.equal(up.sent.length, 0);
  await Promise.resolve();
  t.equal(up.sent.length, 1);
  up.sent[0]!.resolve("v");
  t.same(await Promise.all(calls), ["v", "v", "v"]);
});

t.test("serializable and linearizable never share; different keys never share", async (t) => {
  const s = manualSchedule();
  const f = new SingleFlight<string>({ schedule: s.schedule });
  const up = upstream();
  void f.run("k", "serializable", k, never, up.call);
  void f.run("k", "linearizable", k, never, up.call);
  void f.run("alice|k", "serializable", k, never, up.call);
  s.flush();
  t.equal(up.sent.length, 3);
  t.equal(f.shared, 0);
  for (const c of up.sent) c.resolve("");
});

t.test("a change to the range stops new callers joining a serializable call in flight", async (t) => {
  const s = manualSchedule();
  const f = new SingleFlight<string>({ schedule: s.schedule });
  const up = upstream();
  const a = f.run("k", "serializable", k, never, up.call);
  const p = f.run("p", "serializable", intervalOf(enc("p"), enc("q")), never, up.call);
  const lin = f.run("k", "linearizable", k, never, up.call);
  f.forget(pointOf(enc("k")));
  const b = f.run("k", "serializable", k, never, up.call);
  t.equal(up.sent.length, 3, "b did not join a (which may hold the old value)");
  void f.run("p", "serializable", intervalOf(enc("p"), enc("q")), never, up.call);
  t.equal(up.sent.length, 3, "a call on another range is still joinable");
  void f.run("k", "linearizable", k, never, up.call);
  s.flush();
  t.equal(up.sent.length, 4, "an unsent linearizable call stays joinable: it will see the change");
  up.sent.forEach((c, i) => c.resolve(`v${i}`));
  t.same(await Promise.all([a, b, p, lin]), ["v0", "v2", "v1", "v3"]);
});

t.test("bounded waiters: a full call makes the next caller start a new one", async (t) => {
  const f = new SingleFlight<string>({ maxWaiters: 2 });
  const up = upstream();
  const calls = [1, 2, 3, 4, 5].map(() => f.run("k", "serializable", k, never, up.call));
  t.equal(up.sent.length, 3, "2 + 2 + 1");
  up.sent.forEach((c, i) => c.resolve(`v${i}`));
  t.same(await Promise.all(calls), ["v0", "v0", "v1", "v1", "v2"]);
});

t.test("a caller that leaves gets its own reason; the call goes on for the others and ends with the last", async (t) => {
  const f = new SingleFlight<string>();
  const up = upstream();
  const leaving = new AbortController();
  const staying = new AbortController();
  const a = f.run("k", "serializable", k, leaving.signal, up.call);
  const b = f.run("k", "serializable", k, staying.signal, up.call);
  leaving.abort(new Error("client went away"));
  await t.rejects(a, /client went away/);
  t.notOk(up.sent[0]!.signal.aborted, "still wanted by b");
  staying.abort(new Error("b too"));
  await t.rejects(b, /b too/);
  t.ok(up.sent[0]!.signal.aborted, "nobody left: the upstream call is cancelled");
  const c = f.run("k", "serializable", k, never, up.call);
  t.equal(up.sent.length, 2, "a cancelled call is not joined");
  up.sent[1]!.resolve("v");
  t.equal(await c, "v");
});

t.test("an unsent linearizable call whose callers all left is never sent", async (t) => {
  const s = manualSchedule();
  const f = new SingleFlight<string>({ schedule: s.schedule });
  const up = upstream();
  const ac = new AbortController();
  const a = f.run("k", "linearizable", k, ac.signal, up.call);
  ac.abort(new Error("gone"));
  await t.rejects(a, /gone/);
  s.flush();
  t.equal(up.sent.length, 0);
});

t.test("an error is shared like an answer", async (t) => {
  const f = new SingleFlight<string>();
  const up = upstream();
  const a = f.run("k", "serializable", k, never, up.call);
  const b = f.run("k", "serializable", k, never, up.call);
  up.sent[0]!.reject(new Error("etcdserver: permission denied"));
  await t.rejects(a, /permission denied/);
  await t.rejects(b, /permission denied/);
  t.equal(f.open, 0);
});
