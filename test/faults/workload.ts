/**
 * The randomized workload of the robustness test: clients that put, delete, compare-and-set and read
 * (linearizable and serializable) a few keys under one prefix, each through one door (a protocol of the
 * proxy, or etcd directly), recording what they asked, when, and what came back.
 */
import { performance } from "node:perf_hooks";
import type { Operation } from "../helpers/linearizability.js";
import { sleep } from "../helpers/ports.js";
import type { Door, Read } from "./doors.js";

/** mulberry32: a small seeded PRNG, so that a seed gives the same choices (not the same timings). */
export function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Client {
  name: string;
  door: Door;
  viaProxy: boolean;
}

/** A client's latest acknowledged write to a key: what its later serializable reads must not predate. */
interface OwnWrite { kind: "put" | "delete"; revision: bigint }

export interface SerializableRead { client: string; key: string; after?: OwnWrite; read: Read; call: number }

export interface AckedPut { client: string; door: string; key: string; value: string; revision: bigint; call: number; ret: number }

export interface Records {
  /** Linearizable reads and every write: the history the checker is given. */
  ops: Operation[];
  serializable: SerializableRead[];
  acked: AckedPut[];
  failedReads: number;
  unknownWrites: number;
  /** Direct writes refused by a stopped etcd: not applied, left out of the history. */
  refusedWrites: number;
  errors: Map<string, number>;
}

export function newRecords(): Records {
  return { ops: [], serializable: [], acked: [], failedReads: 0, unknownWrites: 0, refusedWrites: 0, errors: new Map() };
}

/** Runs one client until `end()` (performance.now()): one call at a time, each outcome recorded. */
export async function runClient(c: Client, keys: string[], seed: number, end: () => number, rec: Records): Promise<void> {
  const random = rng(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)]!;
  const own = new Map<string, OwnWrite>();
  const lastSeen = new Map<string, string>();
  let failed = false;
  const noteError = (err: unknown) => {
    failed = true;
    const m = String(err instanceof Error ? err.message : err).replace(/\d+/g, "N").slice(0, 80);
    rec.errors.set(`${c.door.name}: ${m}`, (rec.errors.get(`${c.door.name}: ${m}`) ?? 0) + 1);
  };
  // A write that failed: of unknown outcome, unless etcd itself refused the connection (a direct client's
  // request then never left; the proxy's answers do not tell the two apart, so they stay unknown).
  const unknown = (err: unknown, op: Operation) => {
    noteError(err);
    if (!c.viaProxy && String(err).includes("ECONNREFUSED")) { rec.refusedWrites++; return; }
    rec.unknownWrites++;
    rec.ops.push(op);
  };
  for (let seq = 1; performance.now() < end(); seq++) {
    const key = pick(keys);
    const value = `${c.name}.${seq}`;
    const x = random();
    const call = performance.now();
    if (x < 0.25) {
      try {
        const revision = await c.door.put(key, value);
        const ret = performance.now();
        rec.ops.push({ key, input: { kind: "put", value }, output: { kind: "ok" }, call, ret, client: c.name });
        rec.acked.push({ client: c.name, door: c.door.name, key, value, revision, call, ret });
        own.set(key, { kind: "put", revision });
      } catch (err) {
        unknown(err, { key, input: { kind: "put", value }, output: undefined, call, ret: Infinity, client: c.name });
      }
    } else if (x < 0.33) {
      try {
        const revision = await c.door.del(key);
        rec.ops.push({ key, input: { kind: "delete" }, output: { kind: "ok" }, call, ret: performance.now(), client: c.name });
        own.set(key, { kind: "delete", revision });
      } catch (err) {
        unknown(err, { key, input: { kind: "delete" }, output: undefined, call, ret: Infinity, client: c.name });
      }
    } else if (x < 0.45) {
      // A compare-and-set from the value this client last saw of the key (it may have changed since).
      const expect = lastSeen.get(key) ?? "none";
      try {
        const r = await c.door.cas(key, expect, value);
        const ret = performance.now();
        if (r.succeeded) {
          rec.ops.push({ key, input: { kind: "cas", expect, value }, output: { kind: "cas", succeeded: true }, call, ret, client: c.name });
          rec.acked.push({ client: c.name, door: c.door.name, key, value, revision: r.revision, call, ret });
          own.set(key, { kind: "put", revision: r.revision });
          lastSeen.set(key, value);
        } else {
          rec.ops.push({ key, input: { kind: "cas", expect, value }, output: { kind: "cas", succeeded: false, value: r.read.value }, call, ret, client: c.name });
          if (r.read.value !== undefined) lastSeen.set(key, r.read.value);
        }
      } catch (err) {
        unknown(err, { key, input: { kind: "cas", expect, value }, output: undefined, call, ret: Infinity, client: c.name });
      }
    } else {
      const serializable = x >= 0.72;
      const after = own.get(key);
      try {
        const read = await c.door.get(key, serializable);
        if (serializable) rec.serializable.push({ client: c.name, key, ...(after ? { after } : {}), read, call });
        else rec.ops.push({ key, input: { kind: "read" }, output: { kind: "read", value: read.value }, call, ret: performance.now(), client: c.name });
        if (read.value !== undefined) lastSeen.set(key, read.value);
      } catch (err) {
        noteError(err);
        rec.failedReads++;
      }
    }
    // After a failure a client backs off 50-150 ms, as etcd's clients do, instead of spinning.
    await sleep(failed ? 50 + random() * 100 : random() * 4);
    failed = false;
  }
}
