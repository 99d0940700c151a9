/**
 * Differential watch test: a random workload of puts, deletes, txns and compactions runs on a real etcd,
 * while the same watchers (random keys, prefixes and from-key ranges; start_revision 0, historic, future;
 * NOPUT/NODELETE; prev_kv) are opened directly on etcd and, several copies each over several connections,
 * through the proxy. Per watcher, what the proxy delivers must be exactly what etcd delivers: the created
 * answer, every event (with prev_kv where asked), and the compaction cancel.
 *
 * Scenarios come from fast-check with a fixed seed (WATCH_DIFF_SEED overrides it); watchers are opened
 * while no write is in flight, so both sides agree on what "now" is for start_revision 0.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import fc from "fast-check";
import t from "tap";
import { KV, Watch, WatchCreateRequest_FilterType, type RequestOp, type WatchResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { dec, enc } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { sleep, waitFor } from "../helpers/ports.js";
import { metric } from "../helpers/prom.js";
import { startEdge } from "../helpers/proxy.js";
import { WatchSession, type CreateInit } from "../helpers/watch-session.js";

const SEED = Number(process.env["WATCH_DIFF_SEED"] ?? 5_2026);
const RUNS = Number(process.env["WATCH_DIFF_RUNS"] ?? 3);
const PROXY_CONNECTIONS = 3;

const etcd = await startEtcd(t);
// WATCH_DIFF_CACHE=1 (test/cache/watch-differential-cached.test.ts): the same runs with every run's keys
// inside a prefix of the watch cache, so watchers are fed from its history (from-key ones still from etcd).
const CACHED = process.env["WATCH_DIFF_CACHE"] === "1";
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, ...(CACHED ? ["--watch-cache-prefix=run"] : [])]);
const kv = createClient(KV, createGrpcTransport({ baseUrl: etcd.url }));

const KEYS = ["a", "b", "c", "a/x", "a/y", "b/z"];
const PREFIXES = ["", "a", "a/", "b"];

type Op =
  | { kind: "put"; key: string; value: string }
  | { kind: "del"; key: string }
  | { kind: "delPrefix"; prefix: string }
  | { kind: "txn"; ops: ({ kind: "put"; key: string; value: string } | { kind: "del"; key: string })[] }
  | { kind: "compact"; frac: number };
interface WatcherPlan {
  target: { kind: "key" | "prefix" | "fromKey"; key: string };
  start: { kind: "zero" } | { kind: "historic"; frac: number } | { kind: "nearCompaction"; delta: number } | { kind: "future"; ahead: number };
  noPut: boolean;
  noDelete: boolean;
  prevKv: boolean;
  copies: number;
}
interface Round { ops: Op[]; watchers: WatcherPlan[] }

const key = fc.constantFrom(...KEYS);
const value = fc.string({ minLength: 0, maxLength: 6 });
const putOp = fc.record({ kind: fc.constant("put" as const), key, value });
const delOp = fc.record({ kind: fc.constant("del" as const), key });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: putOp },
  { weight: 2, arbitrary: delOp },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delPrefix" as const), prefix: fc.constantFrom(...PREFIXES.filter((p) => p !== "")) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("txn" as const), ops: fc.uniqueArray(fc.oneof(putOp, delOp), { minLength: 2, maxLength: 4, selector: (o) => o.key }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("compact" as const), frac: fc.double({ min: 0, max: 1, noNaN: true }) }) },
);
const watcher: fc.Arbitrary<WatcherPlan> = fc.record({
  target: fc.oneof(
    fc.record({ kind: fc.constant("key" as const), key }),
    fc.record({ kind: fc.constant("prefix" as const), key: fc.constantFrom(...PREFIXES) }),
    fc.record({ kind: fc.constant("fromKey" as const), key: fc.constantFrom("a/", "b") }),
  ),
  start: fc.oneof(
    { weight: 3, arbitrary: fc.constant({ kind: "zero" as const }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("historic" as const), frac: fc.double({ min: 0, max: 1, noNaN: true }) }) },
    // Around the compacted revision: compaction cancel or history replay, decided by one revision.
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("nearCompaction" as const), delta: fc.integer({ min: -2, max: 2 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("future" as const), ahead: fc.integer({ min: 1, max: 4 }) }) },
  ),
  noPut: fc.boolean(),
  noDelete: fc.boolean(),
  prevKv: fc.boolean(),
  copies: fc.integer({ min: 1, max: 3 }),
});
const scenario = fc.array(fc.record({ ops: fc.array(op, { minLength: 3, maxLength: 20 }), watchers: fc.array(watcher, { minLength: 1, maxLength: 6 }) }), { minLength: 3, maxLength: 5 });

/** The byte after the prefix's last byte: etcd's prefix range_end ("" → the run's whole prefix). */
function prefixEnd(p: string): string {
  return p.slice(0, -1) + String.fromCharCode(p.charCodeAt(p.length - 1) + 1);
}

/** One side of one watcher: the session it is on and the id it got. */
interface Opened { session: WatchSession; created: WatchResponse }
interface Tracked { plan: WatcherPlan; request: CreateInit; direct: Opened; proxied: Opened[] }

/** What a watcher was told, as comparable text: created, each event, and how it ended. */
function transcript(o: Opened): string[] {
  const c = o.created;
  const out = [`created revision=${c.header?.revision} canceled=${c.canceled} reason=${c.cancelReason} compact=${c.compactRevision}`];
  if (c.canceled) return out;
  for (const r of o.session.of(c.watchId)) {
    if (r.created) continue;
    for (const e of r.events) {
      const kv = e.kv!;
      const prev = e.prevKv ? ` prev=${dec(e.prevKv.value)}@${e.prevKv.modRevision}` : "";
      out.push(`${e.type === 0 ? "PUT" : "DELETE"} ${dec(kv.key)}=${dec(kv.value)} create=${kv.createRevision} mod=${kv.modRevision} version=${kv.version}${prev}`);
    }
    if (r.canceled) out.push(`canceled compact=${r.compactRevision} reason=${r.cancelReason}`);
  }
  return out;
}

async function apply(prefix: string, o: Op, state: { compacted: bigint }): Promise<void> {
  const k = (s: string) => enc(prefix + s);
  const asRequest = (x: { kind: "put"; key: string; value: string } | { kind: "del"; key: string }) =>
    (x.kind === "put"
      ? { request: { case: "requestPut", value: { key: k(x.key), value: enc(x.value) } } }
      : { request: { case: "requestDeleteRange", value: { key: k(x.key) } } }) as unknown as RequestOp;
  switch (o.kind) {
    case "put": await kv.put({ key: k(o.key), value: enc(o.value) }); break;
    case "del": await kv.deleteRange({ key: k(o.key) }); break;
    case "delPrefix": await kv.deleteRange({ key: k(o.prefix), rangeEnd: enc(prefixEnd(prefix + o.prefix)) }); break;
    case "txn": await kv.txn({ success: o.ops.map(asRequest) }); break;
    case "compact": {
      const current = (await kv.range({ key: k("a") })).header!.revision;
      const target = state.compacted + BigInt(Math.max(1, Math.floor(o.frac * Number(current - state.compacted))));
      if (target > state.compacted && target <= current) {
        await kv.compact({ revision: target });
        state.compacted = target;
      }
      break;
    }
  }
}

function createRequest(prefix: string, plan: WatcherPlan, current: bigint, compacted: bigint): CreateInit {
  const { target, start } = plan;
  const rangeEnd = target.kind === "key" ? "" : target.kind === "fromKey" ? "\0" : prefixEnd(prefix + target.key);
  const near = (d: number) => { const r = compacted + BigInt(d); return r < 1n ? 1n : r > current ? current : r; };
  const startRevision = start.kind === "zero" ? 0n
    : start.kind === "future" ? current + BigInt(start.ahead)
    : start.kind === "nearCompaction" ? near(start.delta)
    : 1n + BigInt(Math.floor(start.frac * Number(current - 1n)));
  const filters = [...(plan.noPut ? [WatchCreateRequest_FilterType.NOPUT] : []), ...(plan.noDelete ? [WatchCreateRequest_FilterType.NODELETE] : [])];
  return { key: enc(prefix + target.key), rangeEnd: enc(rangeEnd), startRevision, filters, prevKv: plan.prevKv };
}

const zero = { kind: "zero" } as const;
const plain = { noPut: false, noDelete: false, prevKv: false, copies: 2 };
const onC = { kind: "key", key: "c" } as const;

/**
 * Fixed cases the random runs reach only rarely. A quiet key with a live shared watch, then a compaction
 * past it: a watcher starting just below the compaction must get etcd's compaction cancel, one starting at
 * it must replay from there, although the shared watch has delivered nothing they need.
 */
const FIXED: [string, Round[]][] = [
  ["start revisions around a compaction on a quiet key that a live watch covers", [
    { ops: [{ kind: "put", key: "c", value: "1" }], watchers: [{ target: onC, start: zero, ...plain }] },
    {
      ops: [...Array.from({ length: 5 }, (_, i): Op => ({ kind: "put", key: "a", value: `${i}` })), { kind: "compact", frac: 1 }],
      watchers: [-2, -1, 0].map((delta) => ({ target: onC, start: { kind: "nearCompaction" as const, delta }, ...plain })),
    },
    { ops: [{ kind: "put", key: "c", value: "2" }, { kind: "del", key: "c" }], watchers: [{ target: onC, start: zero, ...plain, prevKv: true }] },
    { ops: [{ kind: "put", key: "c", value: "3" }], watchers: [] },
  ]],
];

const scenarios = fc.sample(scenario, { seed: SEED, numRuns: RUNS });
t.comment(`seed ${SEED} (WATCH_DIFF_SEED=<n> to replay another)`);

const cases: [string, Round[]][] = [
  ...FIXED,
  ...scenarios.map((rounds, run): [string, Round[]] => [
    `run ${run}: ${rounds.length} rounds, ${rounds.reduce((n, r) => n + r.ops.length, 0)} writes, ${rounds.reduce((n, r) => n + r.watchers.reduce((m, w) => m + 1 + w.copies, 0), 0)} watchers`,
    rounds,
  ]),
];

for (const [run, [name, rounds]] of cases.entries()) {
  t.test(name, async (t) => {
    const prefix = `run${run}-${SEED}/`;
    const directClient: Client<typeof Watch> = createClient(Watch, createGrpcTransport({ baseUrl: etcd.url }));
    const direct = [new WatchSession(directClient), new WatchSession(directClient)];
    const proxied = Array.from({ length: PROXY_CONNECTIONS }, () => new WatchSession(createClient(Watch, createGrpcTransport({ baseUrl: edge.url }))));
    t.teardown(() => { for (const s of [...direct, ...proxied]) s.close(); });
    const state = { compacted: await currentCompaction() };
    const tracked: Tracked[] = [];
    let n = 0;
    for (const round of rounds) {
      for (const o of round.ops) await apply(prefix, o, state);
      const current = (await kv.range({ key: enc(prefix) })).header!.revision;
      for (const plan of round.watchers) {
        const request = createRequest(prefix, plan, current, state.compacted);
        const d = direct[n % direct.length]!;
        const opened: Tracked = { plan, request, direct: { session: d, created: await d.createAndWait(request) }, proxied: [] };
        for (let c = 0; c < plan.copies; c++) {
          const p = proxied[(n + c) % proxied.length]!;
          opened.proxied.push({ session: p, created: await p.createAndWait(request) });
        }
        tracked.push(opened);
        n++;
      }
      // etcd syncs watchers that start in the past every 100 ms; give both sides that before writing again.
      await sleep(300);
    }
    const mismatches = () => tracked.flatMap((w) => w.proxied.filter((p) => JSON.stringify(transcript(p)) !== JSON.stringify(transcript(w.direct))).map((p) => ({ w, p })));
    await waitFor("every proxied watcher to tell what etcd told", () => mismatches().length === 0, 20_000).catch(() => undefined);
    await sleep(300); // nothing extra may arrive afterwards either
    for (const { w, p } of mismatches()) {
      t.same(transcript(p), transcript(w.direct), `watcher ${JSON.stringify(w.plan)} start_revision=${w.request.startRevision}: proxy vs etcd`);
    }
    const events = tracked.reduce((m, w) => m + transcript(w.direct).length - 1, 0);
    t.equal(mismatches().length, 0, `${tracked.length} watchers (${tracked.reduce((m, w) => m + w.proxied.length, 0)} through the proxy) saw exactly what etcd sent (${events} events and cancels)`);
  });
}

if (CACHED) {
  t.test("the watch cache fed watchers itself", async (t) => {
    const served = await metric(edge.url, "etcd_edge_watch_cache_served_total", { kind: "watch" });
    t.ok(served > 0, `${served} watchers fed from the cache`);
  });
}

/** etcd's compaction so far, read as the lowest revision a Range still serves. */
async function currentCompaction(): Promise<bigint> {
  try {
    await kv.range({ key: enc("x"), revision: 1n });
    return 0n;
  } catch {
    // Compacted past 1: find the compaction revision by bisection over [1, current].
    let lo = 1n;
    let hi = (await kv.range({ key: enc("x") })).header!.revision;
    while (lo < hi) {
      const mid = (lo + hi) / 2n;
      try {
        await kv.range({ key: enc("x"), revision: mid });
        hi = mid;
      } catch {
        lo = mid + 1n;
      }
    }
    return lo;
  }
}
