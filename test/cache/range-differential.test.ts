/**
 * Randomized differential test of Range through the watch cache: random puts, deletes, txns, keys on
 * leases that expire, and compactions run on etcd; then random Range requests (one key, the prefix, a
 * sub-range, from-key; revision 0, past, compacted or future; serializable or not; limit, sort, keys_only,
 * count_only, min/max mod and create revisions) go through the proxy (--watch-cache-prefix=/rd/) and
 * directly to etcd. Each answer must be etcd's byte for byte, or the same error. Seeded (RANGE_DIFF_SEED,
 * RANGE_DIFF_RUNS); at the end the cache must have answered reads of every kind itself.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import fc from "fast-check";
import t from "tap";
import { KV, Lease, RangeRequest_SortOrder, RangeRequest_SortTarget, RangeRequestSchema, RangeResponseSchema, type RequestOp } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, enc } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { waitFor } from "../helpers/ports.js";
import { metric } from "../helpers/prom.js";
import { startEdge } from "../helpers/proxy.js";

const SEED = Number(process.env["RANGE_DIFF_SEED"] ?? 20261130);
const RUNS = Number(process.env["RANGE_DIFF_RUNS"] ?? 4);
const READS_PER_RUN = 120;

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, "--watch-cache-prefix=/rd/"]);
const direct = createClient(KV, createGrpcTransport({ baseUrl: etcd.url }));
const leases = createClient(Lease, createGrpcTransport({ baseUrl: etcd.url }));
const viaEdge = clientFor(KV, "grpc", edge.url);
await waitFor("the cache to be ready", async () => (await metric(edge.url, "etcd_edge_watch_cache_ready")) === 1);

const KEYS = ["/rd/a", "/rd/b", "/rd/b/1", "/rd/b/2", "/rd/c", "/rd/d", "/other"];
type Write =
  | { kind: "put"; key: string; value: string; lease: boolean }
  | { kind: "del"; key: string }
  | { kind: "delRange"; from: string; to: string }
  | { kind: "txn"; puts: { key: string; value: string }[] }
  | { kind: "compact"; frac: number };
const key = fc.constantFrom(...KEYS);
const write: fc.Arbitrary<Write> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("put" as const), key, value: fc.string({ maxLength: 5 }), lease: fc.integer({ min: 0, max: 9 }).map((n) => n < 3) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("del" as const), key }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delRange" as const), from: fc.constant("/rd/b"), to: fc.constant("/rd/c") }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("txn" as const), puts: fc.uniqueArray(fc.record({ key, value: fc.string({ maxLength: 5 }) }), { minLength: 2, maxLength: 4, selector: (p) => p.key }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("compact" as const), frac: fc.integer({ min: 0, max: 50 }).map((n) => n / 100) }) },
);
const RANGES: [string, string][] = [["/rd/a", ""], ["/rd/b/1", ""], ["/rd/", "/rd0"], ["/rd/b", "/rd/c"], ["/rd/b/", "/rd/b0"], ["/rd/c", "\0"], ["/rd/zz", ""]];
const read = fc.record({
  range: fc.constantFrom(...RANGES),
  revision: fc.oneof({ weight: 3, arbitrary: fc.constant(-1) }, { weight: 4, arbitrary: fc.integer({ min: 0, max: 105 }) }),
  serializable: fc.boolean(),
  limit: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: 1, max: 4 }) }),
  sortOrder: fc.constantFrom(RangeRequest_SortOrder.NONE, RangeRequest_SortOrder.ASCEND, RangeRequest_SortOrder.DESCEND),
  sortTarget: fc.oneof({ weight: 5, arbitrary: fc.constant(RangeRequest_SortTarget.KEY) }, { weight: 1, arbitrary: fc.constant(RangeRequest_SortTarget.VALUE) }),
  keysOnly: fc.boolean(),
  countOnly: fc.integer({ min: 0, max: 9 }).map((n) => n < 3),
  minMod: fc.oneof({ weight: 4, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 100 }) }),
  maxMod: fc.oneof({ weight: 4, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 100 }) }),
  minCreate: fc.oneof({ weight: 4, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 100 }) }),
  maxCreate: fc.oneof({ weight: 4, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 100 }) }),
});
const runs = fc.sample(fc.array(write, { minLength: 20, maxLength: 50 }), { seed: SEED, numRuns: RUNS });
const reads = fc.sample(read, { seed: SEED + 1, numRuns: RUNS * READS_PER_RUN });
t.comment(`seed ${SEED} (RANGE_DIFF_SEED=<n> to replay another)`);

let compacted = 0n;
async function apply(w: Write): Promise<void> {
  switch (w.kind) {
    case "put": {
      const lease = w.lease ? (await leases.leaseGrant({ TTL: 1n })).ID : 0n;
      await direct.put({ key: enc(w.key), value: enc(w.value), lease });
      break;
    }
    case "del": await direct.deleteRange({ key: enc(w.key) }); break;
    case "delRange": await direct.deleteRange({ key: enc(w.from), rangeEnd: enc(w.to) }); break;
    case "txn": await direct.txn({ success: w.puts.map((p) => ({ request: { case: "requestPut", value: { key: enc(p.key), value: enc(p.value) } } }) as RequestOp) }); break;
    case "compact": {
      const head = (await direct.range({ key: enc("x") })).header!.revision;
      const target = compacted + BigInt(Math.floor(w.frac * Number(head - compacted)));
      if (target > compacted) {
        await direct.compact({ revision: target });
        compacted = target;
      }
    }
  }
}

type Outcome = { ok: string } | { error: string };
async function outcome(p: Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: Buffer.from(toBinary(RangeResponseSchema, (await p) as never)).toString("hex") };
  } catch (err) {
    const e = ConnectError.from(err);
    return { error: `${e.code} ${e.rawMessage}` };
  }
}

for (const [run, writes] of runs.entries()) {
  t.test(`run ${run}: ${writes.length} writes`, async (t) => {
    for (const w of writes) await apply(w);
    // Leased keys expire (TTL 1 s); then one write inside the prefix, and etcd and the cache are quiet.
    await waitFor("leased keys to expire", async () => (await direct.range({ key: enc("/rd/"), rangeEnd: enc("/rd0") })).kvs.every((kv) => kv.lease === 0n), 10_000);
    await direct.put({ key: enc("/rd/a"), value: enc(`end-${run}`) });
    const head = (await direct.range({ key: enc("x") })).header!.revision;
    await waitFor("the cache to reach etcd", async () => BigInt(await metric(edge.url, "etcd_edge_watch_cache_revision")) >= head);
    let same = 0;
    for (const r of reads.slice(run * READS_PER_RUN, (run + 1) * READS_PER_RUN)) {
      // A revision as a percentage of etcd's head (-1: 0, none); past 100: a future revision.
      const at = (pct: number) => (pct < 0 ? 0n : 1n + BigInt(Math.floor((pct / 100) * Number(head))));
      const req = create(RangeRequestSchema, {
        key: enc(r.range[0]), rangeEnd: enc(r.range[1]), revision: at(r.revision), serializable: r.serializable,
        limit: BigInt(r.limit), sortOrder: r.sortOrder, sortTarget: r.sortTarget, keysOnly: r.keysOnly, countOnly: r.countOnly,
        minModRevision: at(r.minMod), maxModRevision: at(r.maxMod), minCreateRevision: at(r.minCreate), maxCreateRevision: at(r.maxCreate),
      });
      const [mine, etcds] = [await outcome(viaEdge.range(req)), await outcome(direct.range(req))];
      if (JSON.stringify(mine) === JSON.stringify(etcds)) same++;
      else t.same(mine, etcds, `Range ${JSON.stringify(req, (_, v) => (typeof v === "bigint" ? String(v) : v instanceof Uint8Array ? Buffer.from(v).toString() : v))}`);
    }
    t.equal(same, READS_PER_RUN, `${same} of ${READS_PER_RUN} answers are etcd's, byte for byte`);
  });
}

t.test("the cache answered reads of every kind itself", async (t) => {
  for (const kind of ["serializable", "linearizable", "revision"]) {
    const n = await metric(edge.url, "etcd_edge_watch_cache_served_total", { kind });
    t.ok(n > 10, `${kind}: ${n} answered from the cache`);
  }
  t.ok(await metric(edge.url, "etcd_edge_watch_cache_fallbacks_total", { reason: "sort" }) > 0, "sorts by value went to etcd");
  t.equal(await metric(edge.url, "etcd_edge_watch_cache_fallbacks_total", { reason: "count_mismatch" }), 0, "the cache's count never differed from etcd's");
});
