/**
 * upstream/cache/: the watch cache. Imports: upstream/client/, wire/, runtime/, observe/.
 *
 * --watch-cache-prefix=P (repeatable): for each prefix, the proxy's own copy of etcd's keys under it and
 * of their recent history, kept by one upstream watch (prefix-cache.ts). From it:
 * - Range inside a prefix, at revision 0 (serializable or linearizable) or at a past revision still in
 *   the history, once etcd has confirmed it with a count-only request of the caller's own (read-checks.ts):
 *   the answer is the keys at the very revision etcd named, evaluated as etcd's applier does
 *   (range-eval.ts), with etcd's header; etcd sends a header and a count, not the keys.
 * - Watch inside a prefix from any start revision still in the history (upstream/watch/cache-feed.ts).
 * Anything else, and everything while a prefix is resynchronising, goes to etcd as before.
 */
import { create } from "@bufbuild/protobuf";
import { RangeResponseSchema, type RangeRequest, type RangeResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { Logger } from "../../observe/log.js";
import type { CallerContext } from "../../wire/caller.js";
import { intervalOf, type KeyInterval } from "../client/key-ranges.js";
import type { Upstream } from "../client/upstream.js";
import { DEFAULT_HISTORY, type HistoryLimits } from "./history.js";
import { PrefixCache } from "./prefix-cache.js";
import { answerable, evaluate } from "./range-eval.js";
import { ReadChecks } from "./read-checks.js";

export interface WatchCacheOptions extends HistoryLimits {
  /** 512 MiB per prefix: a prefix whose keys outgrow it is not cached (logged; retried). */
  maxStoreBytes: number;
  /**
   * 1 s: how long a read waits for the cache to reach the revision etcd named before asking etcd instead.
   * With a progress answer etcd orders (3.4.31+, 3.5.13+) a quiet prefix catches up in one round trip;
   * older ones can only be waited for by their events, so there the wait is 0.
   */
  catchUpMs: number;
  /**
   * 10 minutes, etcd's --experimental-watch-progress-notify-interval default: a fed watcher that asked
   * progress_notify and had no event in an interval gets a progress notification, as from etcd. Set it to
   * etcd's (--watch-cache-progress-notify-interval).
   */
  progressNotifyMs: number;
}

export const DEFAULT_WATCH_CACHE: WatchCacheOptions = { ...DEFAULT_HISTORY, maxStoreBytes: 512 * 1024 * 1024, catchUpMs: 1_000, progressNotifyMs: 10 * 60_000 };

export type ServedKind = "serializable" | "linearizable" | "revision" | "watch";
export type FallbackReason = "not_ready" | "sort" | "behind" | "history" | "count_mismatch";

export class WatchCache {
  readonly prefixes: PrefixCache[];
  readonly checks: ReadChecks;
  readonly options: WatchCacheOptions;
  readonly served: Record<ServedKind, number> = { serializable: 0, linearizable: 0, revision: 0, watch: 0 };
  readonly fallbacks: Record<FallbackReason, number> = { not_ready: 0, sort: 0, behind: 0, history: 0, count_mismatch: 0 };

  constructor(up: Upstream, prefixes: Uint8Array[], o: Partial<WatchCacheOptions> = {}, private readonly log?: Logger) {
    this.options = { ...DEFAULT_WATCH_CACHE, ...o };
    this.checks = new ReadChecks(up);
    this.prefixes = prefixes.map((p) => new PrefixCache(up, p, prefixEnd(p), this.options, log));
  }

  start(): void {
    for (const p of this.prefixes) p.start();
  }

  close(): void {
    for (const p of this.prefixes) p.close();
  }

  /** The prefix holding every key of `iv`, whether or not it is ready. */
  covering(iv: KeyInterval | undefined): PrefixCache | undefined {
    return iv ? this.prefixes.find((p) => p.covers(iv)) : undefined;
  }

  /**
   * The answer from memory, or undefined when the request is not the cache's (etcd answers it). Once the
   * cache has taken a request, `fallback` is how it asks etcd after all (see FallbackReason).
   */
  range(ctx: CallerContext, req: RangeRequest, fallback: () => Promise<RangeResponse>): Promise<RangeResponse> | undefined {
    const iv = intervalOf(req.key, req.rangeEnd);
    const cache = this.covering(iv);
    if (!cache || !iv) return undefined;
    if (!cache.ready) return this.fellBack("not_ready");
    if (!answerable(req)) return this.fellBack("sort");
    return this.answer(ctx, req, cache, iv, fallback);
  }

  private async answer(ctx: CallerContext, req: RangeRequest, cache: PrefixCache, iv: KeyInterval, fallback: () => Promise<RangeResponse>): Promise<RangeResponse> {
    const checked = await this.checks.check(ctx, req);
    const header = checked.header;
    const at = req.revision > 0n ? req.revision : header?.revision ?? 0n;
    if (at > cache.rev && !(await cache.waitFor(at, cache.progressSafe ? this.options.catchUpMs : 0))) return this.fellBack("behind", fallback);
    const memoKey = cache.memo.keyOf(req, header);
    let answer = cache.memo.get(memoKey);
    if (!answer) {
      const kvs = cache.view(at, iv);
      if (!kvs) return this.fellBack("history", fallback);
      if (BigInt(kvs.length) !== checked.count) {
        this.log?.warn({ prefix: cache.iv.start, revision: String(at), etcd: String(checked.count), cache: kvs.length }, "watch cache: count differs from etcd's; answered by etcd");
        return this.fellBack("count_mismatch", fallback);
      }
      const a = evaluate(req, kvs);
      answer = create(RangeResponseSchema, { header, kvs: a.kvs, count: a.count, more: a.more });
      cache.memo.set(memoKey, answer);
    }
    this.served[req.revision > 0n ? "revision" : req.serializable ? "serializable" : "linearizable"]++;
    return answer;
  }

  private fellBack(reason: FallbackReason): undefined;
  private fellBack(reason: FallbackReason, fallback: () => Promise<RangeResponse>): Promise<RangeResponse>;
  private fellBack(reason: FallbackReason, fallback?: () => Promise<RangeResponse>): Promise<RangeResponse> | undefined {
    this.fallbacks[reason]++;
    return fallback?.();
  }
}

/** The range_end of a prefix: its last byte below 0xff raised by one, bytes after it dropped. */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return new Uint8Array([0]); // all 0xff: every key from it on
}
