/**
 * upstream/kv/: range cache, invalidation, single-flight. Imports: upstream/client/, wire/, runtime/, observe/.
 *
 * The KV service's way to etcd: Range answered from the range cache or through single-flight, and writes
 * that invalidate the cache the moment etcd acknowledges them, before the writer hears back. So a client
 * that wrote through the proxy never reads its old value back from the cache.
 *
 * What is cached: serializable Range with revision 0 (the current state), for callers without `hasleader`.
 * - revision != 0 is never cached: the answer for a past revision does not change, but it turns into
 *   OutOfRange "required revision has been compacted" once etcd compacts it, and a future revision is an
 *   error that later becomes an answer. Forwarding keeps both exact; single-flight still shares identical
 *   concurrent ones.
 * - `hasleader` callers ask etcd, which fails them when it has no leader; the cache cannot know that.
 * - linearizable reads always go to etcd; their answers are stored (they are the freshest there are).
 * The key is the whole request (serializable forced to true) plus the caller's identity (token,
 * authorization): nobody is served an answer etcd gave someone else (etcd's proxy did: #22065).
 */
import { toBinary } from "@bufbuild/protobuf";
import type { CallOptions } from "@connectrpc/connect";
import { setImmediate } from "node:timers";
import {
  RangeRequestSchema,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type ResponseHeader,
  type TxnRequest,
  type TxnResponse,
} from "../../../gen/etcdserverpb/rpc_pb.js";
import { CacheInvalidator, type CacheInvalidatorOptions, type InvalidationSink } from "./cache-invalidator.js";
import type { EtcdClients } from "../client/clients.js";
import { ALL_KEYS, intervalOf, keyString, pointOf, type KeyInterval } from "../client/key-ranges.js";
import { RangeCache, type RangeCacheLimits } from "./range-cache.js";
import { SingleFlight, type SingleFlightOptions } from "./single-flight.js";
import { callerIdentity, type CallerContext } from "../../wire/caller.js";
import { chargeOf } from "../../wire/flow.js";
import type { Upstream } from "../client/upstream.js";
import type { WatchCache } from "../cache/watch-cache.js";

export interface CoalescedKvOptions {
  cache: Partial<RangeCacheLimits>;
  flights: Partial<SingleFlightOptions>;
  /** false: no invalidation watch, so the cache stays off (single-flight still works). */
  invalidator: Partial<CacheInvalidatorOptions> | false;
  /** --watch-cache-prefix: Range inside its prefixes is answered from it when it can (range cache hits first). */
  watchCache: WatchCache;
}

/** Nested txns deeper than this invalidate the whole cache instead of being walked (bounded recursion). */
const MAX_TXN_DEPTH = 16;
/** Intervals of one Txn beyond which the whole cache is invalidated instead (etcd allows 128 ops per level by default). */
const MAX_TXN_INTERVALS = 4096;

export class CoalescedKv implements InvalidationSink {
  readonly cache: RangeCache;
  readonly flights: SingleFlight<RangeResponse>;
  private readonly invalidator: CacheInvalidator | undefined;
  private readonly watchCache: WatchCache | undefined;

  constructor(private readonly up: Upstream, o: Partial<CoalescedKvOptions> = {}) {
    this.watchCache = o.watchCache;
    this.cache = new RangeCache(o.cache);
    this.flights = new SingleFlight({ schedule: afterThisIoTurn, ...o.flights });
    if (o.invalidator !== false) {
      this.invalidator = new CacheInvalidator(up, this, o.invalidator);
      this.invalidator.start();
    }
  }

  async range(ctx: CallerContext, req: RangeRequest): Promise<RangeResponse> {
    const hasLeader = ctx.requestHeader.get("hasleader") !== null;
    const cacheable = req.revision === 0n && !hasLeader;
    const key = cacheKey(ctx.requestHeader, req);
    if (cacheable && req.serializable) {
      const hit = this.cache.get(key);
      if (hit) return hit;
    }
    return this.watchCache?.range(ctx, req, () => this.fromEtcd(ctx, req, key, cacheable)) ?? this.fromEtcd(ctx, req, key, cacheable);
  }

  /** Through single-flight; a revision-0 answer is stored in the range cache. */
  private fromEtcd(ctx: CallerContext, req: RangeRequest, key: string, cacheable: boolean): Promise<RangeResponse> {
    const iv = intervalOf(req.key, req.rangeEnd);
    // Under --fairness a shared call waits in its first caller's queues: callers of another flow get a
    // call of their own, so nobody waits behind (or is refused with) a heavier flow.
    const flow = chargeOf(ctx.requestHeader)?.flow;
    return this.flights.run(flow === undefined ? key : `${key}\u0101${flow}`, req.serializable ? "serializable" : "linearizable", iv, ctx.signal, async (signal) => {
      // Taken when the call is sent: if the cache is reset while it is out, its answer is not stored.
      const ticket = this.cache.ticket();
      const res = await this.up.unary(sharedCaller(ctx, signal), (c, o) => c.kv.range(req, o), { readOnly: true });
      if (cacheable) this.cache.store(key, iv, res, ticket);
      return res;
    });
  }

  put(ctx: CallerContext, req: PutRequest): Promise<PutResponse> {
    return this.write(ctx, [pointOf(req.key)], (c, o) => c.kv.put(req, o));
  }

  deleteRange(ctx: CallerContext, req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    const iv = intervalOf(req.key, req.rangeEnd);
    return this.write(ctx, iv ? [iv] : [], (c, o) => c.kv.deleteRange(req, o));
  }

  /**
   * Every compare range and every op range of both branches, nested txns included, whichever branch ran:
   * over-invalidating costs a miss, missing one would serve a stale value (etcd's proxy skips nested txns).
   */
  txn(ctx: CallerContext, req: TxnRequest): Promise<TxnResponse> {
    return this.write(ctx, txnIntervals(req, 0), (c, o) => c.kv.txn(req, o));
  }

  /** Keys changed that the proxy cannot name (a revoked lease deletes its keys): everything goes. */
  changedAll(rev: bigint | undefined): void {
    this.changed([ALL_KEYS], rev);
  }

  close(): void {
    this.invalidator?.close();
    this.cache.disable();
  }

  // InvalidationSink, driven by the invalidation watch.
  enable(rev: bigint): void { this.cache.enable(rev); }
  disable(): void { this.cache.disable(); }
  advance(rev: bigint): void { this.cache.advance(rev); }
  invalidate(iv: KeyInterval, rev: bigint): void { this.changed([iv], rev); }

  private async write<T extends { header?: ResponseHeader }>(ctx: CallerContext, ivs: KeyInterval[], call: (c: EtcdClients, o: CallOptions) => Promise<T>): Promise<T> {
    let res: T;
    try {
      res = await this.up.unary(ctx, call, { readOnly: false });
    } catch (err) {
      // Outcome unknown: drop now; if etcd applied it, the watch reports it with its revision.
      this.changed(ivs, undefined);
      throw err;
    }
    this.changed(ivs, res.header?.revision);
    return res;
  }

  private changed(ivs: KeyInterval[], rev: bigint | undefined): void {
    for (const iv of ivs) {
      this.cache.invalidate(iv, rev);
      this.flights.forget(iv);
    }
  }
}

/**
 * When a linearizable call is sent: after the requests that arrived with it. Each request's handler runs
 * from its own I/O callback, so a microtask would batch nothing; the check phase right after the I/O
 * poll (setImmediate, no timer clamp) sees every request read in that turn, and adds no timer delay.
 */
function afterThisIoTurn(send: () => void): void {
  setImmediate(send);
}

/** The caller's identity plus the whole request: two callers share an answer only if etcd would give both the same. */
function cacheKey(h: Headers, req: RangeRequest): string {
  return callerIdentity(h) + "\u0100" + keyString(toBinary(RangeRequestSchema, { ...req, serializable: true }));
}

/**
 * A shared call carries the first caller's metadata (all callers of one key have the same) but not its
 * deadline or cancellation: it ends when the last caller has gone (SingleFlight aborts `signal`).
 */
function sharedCaller(first: CallerContext, signal: AbortSignal): CallerContext {
  return { requestHeader: first.requestHeader, signal, timeoutMs: () => undefined };
}

/**
 * The key intervals a Txn touches, for invalidation. Collected into one array (a spread of a nested
 * Txn's intervals overflowed the stack at 224,000 puts); past MAX_TXN_INTERVALS it is cheaper, and as
 * correct, to invalidate everything.
 */
function txnIntervals(req: TxnRequest, depth: number, out: KeyInterval[] = []): KeyInterval[] {
  if (depth > MAX_TXN_DEPTH || out.length > MAX_TXN_INTERVALS) return [ALL_KEYS];
  const add = (iv: KeyInterval | undefined) => { if (iv) out.push(iv); };
  for (const c of req.compare) add(intervalOf(c.key, c.rangeEnd));
  for (const ops of [req.success, req.failure]) {
    for (const op of ops) {
      const r = op.request;
      if (r.case === "requestPut") add(pointOf(r.value.key));
      else if (r.case === "requestDeleteRange" || r.case === "requestRange") add(intervalOf(r.value.key, r.value.rangeEnd));
      else if (r.case === "requestTxn" && txnIntervals(r.value, depth + 1, out)[0] === ALL_KEYS) return [ALL_KEYS];
    }
  }
  return out.length > MAX_TXN_INTERVALS ? [ALL_KEYS] : out;
}
