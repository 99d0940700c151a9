/**
 * A linearizability checker for a history of operations on registers (one register per key), in the style
 * of porcupine (Go) and Knossos (Clojure): no well-kept JavaScript one exists on npm. The history is split
 * by key (P-compositionality: a history of independent objects is linearizable iff each object's is), and
 * each key's history is searched with Wing & Gong's algorithm as improved by Lowe ("Testing for
 * linearizability", 2017) and used by porcupine: try to linearize, one by one, the calls that may come
 * first (those called before any pending return); backtrack when a return is reached whose call was not
 * linearized; remember every (set of linearized ops, register state) already explored so that no
 * configuration is searched twice.
 *
 * Operations are those of etcd on one key: a put, a delete (the register becomes absent), a read (its
 * value, or absent) and a compare-and-set (a Txn comparing the key's value, then putting, else reading it).
 * A write whose outcome is unknown (the call failed: it may or may not have taken effect) has an infinite
 * return time and no output, as porcupine does it: it may be linearized anywhere after its call, and last
 * (after every other op) is the same as never.
 */

/** A register's value; undefined is "absent" (never written, or deleted). */
export type Value = string | undefined;

export type Input =
  | { kind: "put"; value: string }
  | { kind: "delete" }
  | { kind: "read" }
  | { kind: "cas"; expect: string; value: string };

/** What a call returned: the value read, or the Txn's outcome (and the value its else branch read). */
export type Output =
  | { kind: "ok" }
  | { kind: "read"; value: Value }
  | { kind: "cas"; succeeded: true }
  | { kind: "cas"; succeeded: false; value: Value };

export interface Operation {
  key: string;
  input: Input;
  /** undefined: the outcome is unknown (only for writes and CAS; a failed read is left out of the history). */
  output: Output | undefined;
  /** performance.now() before the call was sent. */
  call: number;
  /** performance.now() after the answer arrived; Infinity when the outcome is unknown. */
  ret: number;
  /** Who made the call, for messages. */
  client?: string;
}

export type Verdict = "ok" | "illegal" | "unknown";

export interface KeyResult {
  key: string;
  verdict: Verdict;
  operations: number;
  /** Search steps taken (a step is one attempt to linearize one op). */
  steps: number;
  /** For "illegal": the most ops that could be linearized, in that order (a witness prefix). */
  longestPrefix?: Operation[];
}

export interface Result {
  verdict: Verdict;
  operations: number;
  steps: number;
  keys: KeyResult[];
}

/** The register model: whether `input` with `output` is legal in state `s`, and the state after it. */
export function step(s: Value, input: Input, output: Output | undefined): [boolean, Value] {
  switch (input.kind) {
    case "put":
      return [true, input.value];
    case "delete":
      return [true, undefined];
    case "read":
      // A read is never unknown here: a failed read is not in the history.
      return [output?.kind === "read" && output.value === s, s];
    case "cas": {
      const matches = s === input.expect;
      if (output === undefined) return [true, matches ? input.value : s];
      if (output.kind !== "cas") return [false, s];
      if (output.succeeded) return [matches, matches ? input.value : s];
      return [!matches && output.value === s, s];
    }
  }
}

/** One event of the search's doubly-linked list: the call or the return of op `id`. */
interface Entry {
  id: number;
  isCall: boolean;
  time: number;
  /** The call's return entry (for a call entry). */
  match?: Entry;
  prev?: Entry;
  next?: Entry;
}

/** A set of op ids as a growable bit array, keyed for the memo by its words. */
class Bits {
  readonly words: Uint32Array;
  constructor(n: number) { this.words = new Uint32Array(Math.ceil(n / 32) || 1); }
  set(i: number): void { this.words[i >>> 5]! |= 1 << (i & 31); }
  clear(i: number): void { this.words[i >>> 5]! &= ~(1 << (i & 31)); }
  keyWith(i: number): string {
    // The key of this set plus i, without changing it.
    const w = i >>> 5;
    let key = "";
    for (let j = 0; j < this.words.length; j++) key += (j === w ? (this.words[j]! | (1 << (i & 31))) >>> 0 : this.words[j]!).toString(36) + ",";
    return key;
  }
}

/**
 * Checks one key's history (all ops on one register, initially `initial`). `budget` bounds the search
 * steps: past it the verdict is "unknown" (the search is exponential in the worst case).
 */
export function checkRegister(ops: Operation[], initial: Value = undefined, budget = 5_000_000): KeyResult {
  const key = ops[0]?.key ?? "";
  const n = ops.length;
  const entries: Entry[] = [];
  ops.forEach((op, id) => {
    const ret: Entry = { id, isCall: false, time: op.ret };
    entries.push({ id, isCall: true, time: op.call, match: ret }, ret);
  });
  // By time; at equal times calls first (the two ops then count as concurrent, the permissive reading).
  entries.sort((a, b) => (a.time - b.time) || (a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1));
  const head: Entry = { id: -1, isCall: false, time: -Infinity };
  let last = head;
  for (const e of entries) { last.next = e; e.prev = last; last = e; }

  const lift = (e: Entry) => {
    e.prev!.next = e.next;
    if (e.next) e.next.prev = e.prev;
    const m = e.match!;
    m.prev!.next = m.next;
    if (m.next) m.next.prev = m.prev;
  };
  const unlift = (e: Entry) => {
    const m = e.match!;
    m.prev!.next = m;
    if (m.next) m.next.prev = m;
    e.prev!.next = e;
    if (e.next) e.next.prev = e;
  };

  const linearized = new Bits(n);
  const seen = new Set<string>();
  const calls: { entry: Entry; state: Value }[] = [];
  let longest: number[] = [];
  let state: Value = initial;
  let entry = head.next;
  let steps = 0;
  while (head.next !== undefined) {
    if (++steps > budget) return { key, verdict: "unknown", operations: n, steps };
    if (entry === undefined) break; // cannot happen: the list ends with a return entry
    if (entry.isCall) {
      const op = ops[entry.id]!;
      const [ok, next] = step(state, op.input, op.output);
      if (ok) {
        const memo = `${linearized.keyWith(entry.id)}|${next === undefined ? "-" : "+" + next}`;
        if (!seen.has(memo)) {
          seen.add(memo);
          calls.push({ entry, state });
          state = next;
          linearized.set(entry.id);
          lift(entry);
          entry = head.next;
          continue;
        }
      }
      entry = entry.next;
    } else {
      // A return whose call is not linearized yet: the choices made so far cannot work; undo the last.
      if (calls.length > longest.length) longest = calls.map((c) => c.entry.id);
      const top = calls.pop();
      if (top === undefined) return { key, verdict: "illegal", operations: n, steps, longestPrefix: longest.map((id) => ops[id]!) };
      state = top.state;
      linearized.clear(top.entry.id);
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  return { key, verdict: "ok", operations: n, steps };
}

/**
 * Two rewrites of the writes of unknown outcome that keep the verdict, given values unique per key, and
 * keep the search small (each write left with an infinite return time doubles the configurations an
 * illegal history must search):
 * - one whose value somebody saw (a read returned it, a CAS succeeded on it or failed reading it) took
 *   effect before that op did, so it returned, at the latest, when the first of them returned;
 * - one whose value nobody saw (and no CAS expected) is left out: it can always go last, where it changes
 *   nothing seen, and where a linearization puts it earlier only ops that do not look at it (or other
 *   unknown writes, which can go last too) follow it before the next write.
 */
export function prepared(ops: Operation[]): Operation[] {
  const firstSeen = new Map<Value, number>();
  const expected = new Set<Value>();
  const saw = (v: Value, ret: number) => firstSeen.set(v, Math.min(ret, firstSeen.get(v) ?? Infinity));
  for (const op of ops) {
    if (op.output?.kind === "read" || (op.output?.kind === "cas" && !op.output.succeeded)) saw(op.output.value, op.ret);
    if (op.input.kind === "cas") {
      expected.add(op.input.expect);
      if (op.output?.kind === "cas" && op.output.succeeded) saw(op.input.expect, op.ret);
    }
  }
  const out: Operation[] = [];
  for (const op of ops) {
    if (op.output !== undefined || op.input.kind === "delete" || op.input.kind === "read") { out.push(op); continue; }
    const seenBy = firstSeen.get(op.input.value);
    if (seenBy !== undefined) out.push({ ...op, ret: Math.max(seenBy, op.call) });
    else if (expected.has(op.input.value)) out.push(op);
  }
  return out;
}

/** Checks a whole history: split by key, each key checked on its own; every key must be "ok". */
export function checkHistory(ops: Operation[], budgetPerKey?: number): Result {
  const byKey = new Map<string, Operation[]>();
  for (const op of ops) {
    const list = byKey.get(op.key);
    if (list) list.push(op);
    else byKey.set(op.key, [op]);
  }
  const keys = [...byKey.values()].map((list) => checkRegister(prepared(list), undefined, budgetPerKey));
  const verdict: Verdict = keys.some((k) => k.verdict === "illegal") ? "illegal" : keys.some((k) => k.verdict === "unknown") ? "unknown" : "ok";
  return { verdict, operations: ops.length, steps: keys.reduce((a, k) => a + k.steps, 0), keys };
}

/** One line per op, for a failure message. */
export function describe(op: Operation): string {
  const i = op.input;
  const what = i.kind === "put" ? `put(${i.value})` : i.kind === "delete" ? "delete" : i.kind === "read" ? "read" : `cas(${i.expect}→${i.value})`;
  const o = op.output;
  const out = o === undefined ? "?" : o.kind === "ok" ? "ok" : o.kind === "read" ? String(o.value ?? "absent") : o.succeeded ? "succeeded" : `failed, read ${o.value ?? "absent"}`;
  return `${op.client ?? ""} [${op.call.toFixed(1)}, ${op.ret === Infinity ? "∞" : op.ret.toFixed(1)}] ${op.key} ${what} → ${out}`;
}
