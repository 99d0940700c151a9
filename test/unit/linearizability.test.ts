/**
 * The linearizability checker (test/helpers/linearizability.ts) on known histories: it must accept the
 * linearizable ones and reject the others, or the robustness test proves nothing.
 */
import t from "tap";
import { checkHistory, checkRegister, type Input, type Operation, type Output, type Value } from "../helpers/linearizability.js";

const put = (value: string, call: number, ret: number, key = "k"): Operation => ({ key, input: { kind: "put", value }, output: { kind: "ok" }, call, ret });
const del = (call: number, ret: number, key = "k"): Operation => ({ key, input: { kind: "delete" }, output: { kind: "ok" }, call, ret });
const read = (value: Value, call: number, ret: number, key = "k"): Operation => ({ key, input: { kind: "read" }, output: { kind: "read", value }, call, ret });
const unknownPut = (value: string, call: number, key = "k"): Operation => ({ key, input: { kind: "put", value }, output: undefined, call, ret: Infinity });
const cas = (expect: string, value: string, out: Output | undefined, call: number, ret: number): Operation => ({ key: "k", input: { kind: "cas", expect, value }, output: out, call, ret: out ? ret : Infinity });

const verdict = (ops: Operation[]) => checkHistory(ops).verdict;

t.test("sequential histories", async (t) => {
  t.equal(verdict([put("a", 0, 1), read("a", 2, 3)]), "ok", "put then read it");
  t.equal(verdict([put("a", 0, 1), read("b", 2, 3)]), "illegal", "a read of a value never written");
  t.equal(verdict([read(undefined, 0, 1), put("a", 2, 3), del(4, 5), read(undefined, 6, 7)]), "ok", "absent, put, delete, absent");
  t.equal(verdict([put("1", 0, 1), put("2", 2, 3), read("1", 4, 5)]), "illegal", "a stale read after a newer acknowledged write");
  t.equal(verdict([put("a", 0, 1), read(undefined, 2, 3)]), "illegal", "absent after an acknowledged put");
});

t.test("concurrency lets an op take effect anywhere within its call", async (t) => {
  t.equal(verdict([put("a", 0, 10), read(undefined, 2, 3), read("a", 4, 5)]), "ok", "read before and after the put's point");
  t.equal(verdict([put("a", 0, 10), read("a", 2, 3), read(undefined, 4, 5)]), "illegal", "the put cannot be undone by nothing");
  t.equal(verdict([put("1", 0, 10), put("2", 0, 10), read("1", 11, 12), read("2", 13, 14)]), "illegal", "two concurrent puts, then both orders seen");
  t.equal(verdict([put("1", 0, 10), put("2", 0, 10), read("2", 5, 6), read("1", 7, 8)]), "ok", "2 then 1 seen while both are in flight");
  // Two readers seeing the two concurrent writes in opposite orders: not linearizable.
  t.equal(verdict([put("1", 0, 100), put("2", 0, 100), read("1", 10, 20), read("2", 30, 40), read("2", 10, 20), read("1", 50, 60)].map((o, i) => ({ ...o, client: `c${i}` }))), "illegal", "readers disagree on the order");
});

t.test("a write of unknown outcome may or may not have happened, once", async (t) => {
  t.equal(verdict([unknownPut("x", 0), read(undefined, 10, 11)]), "ok", "not (yet) applied");
  t.equal(verdict([unknownPut("x", 0), read("x", 10, 11)]), "ok", "applied");
  t.equal(verdict([unknownPut("x", 0), read(undefined, 5, 6), read("x", 10, 11)]), "ok", "applied late");
  t.equal(verdict([unknownPut("x", 0), read("x", 5, 6), read(undefined, 10, 11)]), "illegal", "applied, then gone with no delete");
  t.equal(verdict([unknownPut("x", 0), read("x", 5, 6), put("y", 7, 8), read("x", 10, 11)]), "illegal", "applied twice");
  t.equal(verdict([unknownPut("x", 20), read("x", 5, 6)]), "illegal", "seen before it was called");
});

t.test("compare-and-set (a Txn on one key)", async (t) => {
  t.equal(verdict([put("a", 0, 1), cas("a", "b", { kind: "cas", succeeded: true }, 2, 3), read("b", 4, 5)]), "ok");
  t.equal(verdict([put("a", 0, 1), cas("a", "b", { kind: "cas", succeeded: false, value: "a" }, 2, 3)]), "illegal", "failed although the value matched");
  t.equal(verdict([put("c", 0, 1), cas("a", "b", { kind: "cas", succeeded: false, value: "c" }, 2, 3)]), "ok", "failed, read the other value");
  t.equal(verdict([put("a", 0, 1), cas("a", "b", { kind: "cas", succeeded: true }, 2, 10), cas("a", "c", { kind: "cas", succeeded: true }, 2, 10)]), "illegal", "two concurrent CAS from the same value both succeed");
  t.equal(verdict([put("a", 0, 1), cas("a", "b", { kind: "cas", succeeded: true }, 2, 10), cas("a", "c", { kind: "cas", succeeded: false, value: "b" }, 2, 10)]), "ok", "one wins, the other sees its value");
  t.equal(verdict([put("a", 0, 1), cas("a", "b", undefined, 2, 0), read("a", 5, 6), read("b", 7, 8)]), "ok", "an unknown CAS applied late");
  t.equal(verdict([put("z", 0, 1), cas("a", "b", undefined, 2, 0), read("b", 5, 6)]), "illegal", "an unknown CAS whose compare cannot hold");
});

t.test("keys are independent (P-compositionality)", async (t) => {
  const ops = [put("1", 0, 1, "a"), put("1", 0, 1, "b"), read("1", 2, 3, "a"), read(undefined, 2, 3, "b")];
  const r = checkHistory(ops);
  t.equal(r.verdict, "illegal");
  t.same(r.keys.map((k) => [k.key, k.verdict]), [["a", "ok"], ["b", "illegal"]], "the bad key is named");
  t.ok(r.keys[1]!.longestPrefix!.length >= 1, "with the ops that could be ordered");
});

t.test("the budget: past it the verdict is unknown, not ok", async (t) => {
  const ops = [put("1", 0, 100), put("2", 0, 100), put("3", 0, 100), read("3", 10, 20), read("1", 30, 40)];
  t.equal(checkRegister(ops, undefined, 3).verdict, "unknown");
});

/** A deterministic PRNG (mulberry32) so a failure here reproduces. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A linearizable history by construction: ops of `clients` concurrent clients on one register, each taking
 * effect at a point inside its interval, applied in the order of those points; some writes lose their answer.
 */
function generated(seed: number, count: number, clients: number): Operation[] {
  const r = rng(seed);
  const free = Array.from({ length: clients }, () => 0);
  const planned: { op: Operation; point: number }[] = [];
  for (let i = 0; i < count; i++) {
    const c = Math.floor(r() * clients);
    const call = free[c]! + r() * 3;
    const ret = call + 0.5 + r() * 10;
    free[c] = ret;
    const x = r();
    const input: Input = x < 0.3 ? { kind: "put", value: `v${i}` } : x < 0.4 ? { kind: "delete" } : x < 0.5 ? { kind: "cas", expect: `v${Math.floor(r() * i)}`, value: `v${i}` } : { kind: "read" };
    planned.push({ op: { key: "k", input, output: undefined, call, ret, client: `c${c}` }, point: call + r() * (ret - call) });
  }
  planned.sort((a, b) => a.point - b.point);
  let s: Value;
  for (const p of planned) {
    const i = p.op.input;
    if (i.kind === "read") p.op.output = { kind: "read", value: s };
    else if (i.kind === "cas") p.op.output = s === i.expect ? { kind: "cas", succeeded: true } : { kind: "cas", succeeded: false, value: s };
    else p.op.output = { kind: "ok" };
    s = i.kind === "put" ? i.value : i.kind === "delete" ? undefined : i.kind === "cas" && s === i.expect ? i.value : s;
    // A write whose answer was lost: its outcome unknown to the client (it did take effect here).
    if (i.kind !== "read" && r() < 0.05) { p.op.output = undefined; p.op.ret = Infinity; }
  }
  return planned.map((p) => p.op);
}

t.test("generated linearizable histories pass; one changed read fails them", async (t) => {
  let checked = 0;
  let caught = 0;
  for (let seed = 1; seed <= 20; seed++) {
    const ops = generated(seed, 200, 8);
    const r = checkHistory(ops);
    t.equal(r.verdict, "ok", `seed ${seed}: linearizable (${r.steps} steps)`);
    checked += ops.length;
    // The last read answered by a value that was never written: must be caught.
    const bad = ops.map((o) => ({ ...o }));
    const idx = bad.findLastIndex((o) => o.input.kind === "read");
    bad[idx] = { ...bad[idx]!, output: { kind: "read", value: "never-written" } };
    if (checkHistory(bad).verdict === "illegal") caught++;
    // A stale read: at the end, a read of a put's value when an acknowledged put or delete was called
    // after that put returned (values are unique: nothing can write it again).
    const acked = ops.filter((o) => (o.input.kind === "put" || o.input.kind === "delete") && o.output !== undefined);
    const lastRet = Math.max(...ops.filter((o) => o.ret !== Infinity).map((o) => o.ret));
    const stale = acked.find((p) => p.input.kind === "put" && acked.some((q) => q.call > p.ret));
    if (stale && stale.input.kind === "put") {
      t.equal(checkHistory([...ops, read(stale.input.value, lastRet + 1, lastRet + 2)]).verdict, "illegal", `seed ${seed}: a stale read at the end is caught`);
    }
  }
  t.equal(caught, 20, "every changed read is caught");
  t.comment(`${checked} generated operations checked`);
});
