/**
 * The serializable Range cache: a bounded LRU of Range answers, an index of the key ranges they cover, and
 * the rules that keep it from ever serving a value etcd no longer holds. Pure bookkeeping, no I/O: the
 * invalidation watch (cache-invalidator.ts) and the proxy's own writes (coalesced-kv.ts) drive it.
 *
 * Never wrong, in three rules:
 * 1. It serves only while an upstream watch over the whole keyspace is live (`enable`); every write that
 *    watch reports removes the entries it touches. Without the watch it is empty and bypassed.
 * 2. A Range answer read at revision S is stored only if no invalidation newer than S touched its range
 *    (the invalidation log). So a read that started before a write, and answers after the write's
 *    invalidation, cannot put the old value back (etcd's proxy could: PR #21870).
 * 3. A read from before the last enable/disable is never stored (`generation`), and nor is one older than
 *    the revision the watch started from: writes before that were never seen.
 */
import type { RangeResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import { ALL_KEYS, KeyRanges, overlaps, type KeyInterval } from "../client/key-ranges.js";
import { shareReply } from "../../wire/shared-replies.js";

export interface RangeCacheLimits {
  /**
   * Entries kept; the least recently used one is evicted to make room. 4096: etcd's proxy keeps 2048, and
   * our key includes the caller's identity, so the same reads by two users take two entries.
   */
  maxEntries: number;
  /** Total estimated bytes of all entries; LRU entries are evicted until a new one fits. 64 MiB. */
  maxBytes: number;
  /** An answer larger than this is never stored (it would push out many small hot ones). 1 MiB. */
  maxEntryBytes: number;
  /**
   * Recent invalidations remembered for rule 2. 4096: far more than the writes that land during one Range
   * round trip. When full the oldest is forgotten and reads older than it are simply not stored.
   */
  maxLog: number;
}

export const DEFAULT_RANGE_CACHE_LIMITS: RangeCacheLimits = {
  maxEntries: 4096,
  maxBytes: 64 * 1024 * 1024,
  maxEntryBytes: 1024 * 1024,
  maxLog: 4096,
};

/** Taken when a read is sent; the store of its answer is refused if the cache was reset since. */
export interface CacheTicket {
  readonly generation: number;
}

interface Entry {
  readonly iv: KeyInterval | undefined;
  /** Shared with every caller that hits it (shared-replies.ts): never changed, replaced when it must. */
  response: RangeResponse;
  readonly bytes: number;
}

interface Invalidation {
  readonly rev: bigint;
  readonly iv: KeyInterval;
}

export class RangeCache {
  readonly limits: RangeCacheLimits;
  hits = 0;
  misses = 0;
  bytes = 0;
  /** Map order is recency: the first entry is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  private readonly index = new KeyRanges<string>();
  private enabled = false;
  private generation = 0;
  /** Every write up to this revision has been applied to the cache (from the watch). */
  private validThrough = 0n;
  /** Invalidations at or below this revision may be missing from `log`: reads that old are not stored. */
  private logFloor = 0n;
  private log: Invalidation[] = [];

  constructor(limits: Partial<RangeCacheLimits> = {}) {
    this.limits = { ...DEFAULT_RANGE_CACHE_LIMITS, ...limits };
  }

  get size(): number {
    return this.entries.size;
  }

  get isEnabled(): boolean {
    return this.enabled;
  }

  /** The watch is live from `rev` on (its created header): start empty, valid from there. */
  enable(rev: bigint): void {
    this.reset();
    this.enabled = true;
    this.validThrough = rev;
    this.logFloor = rev;
  }

  /** The watch is gone (refused, broken, compacted): empty the cache and bypass it until enable. */
  disable(): void {
    this.reset();
    this.enabled = false;
  }

  ticket(): CacheTicket {
    return { generation: this.generation };
  }

  /**
   * The cached answer, or undefined. Its header revision is raised to the revision the watch has reached:
   * the range is unchanged up to there (any write to it would have removed the entry), and that is the
   * revision a serializable read on etcd would report.
   */
  get(key: string): RangeResponse | undefined {
    const e = this.enabled ? this.entries.get(key) : undefined;
    if (!e) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.entries.delete(key);
    this.entries.set(key, e);
    const header = e.response.header;
    if (header && header.revision < this.validThrough) {
      // A new object, kept for the hits that follow until the watch moves on again.
      e.response = { ...e.response, header: { ...header, revision: this.validThrough } };
      shareReply(e.response);
    }
    return e.response;
  }

  /** Stores an answer if rules 2 and 3 allow it; false when it was refused or does not fit. */
  store(key: string, iv: KeyInterval | undefined, response: RangeResponse, ticket: CacheTicket): boolean {
    if (!this.enabled || ticket.generation !== this.generation) return false;
    const rev = response.header?.revision ?? 0n;
    if (rev < this.logFloor) return false;
    if (iv && this.log.some((inv) => inv.rev > rev && overlaps(inv.iv, iv))) return false;
    const bytes = estimateBytes(key, response);
    if (bytes > this.limits.maxEntryBytes || bytes > this.limits.maxBytes) return false;
    this.drop(key);
    while (this.entries.size >= this.limits.maxEntries || this.bytes + bytes > this.limits.maxBytes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.drop(oldest.value);
    }
    shareReply(response);
    this.entries.set(key, { iv, response, bytes });
    if (iv) this.index.add(iv, key);
    this.bytes += bytes;
    return true;
  }

  /**
   * Keys in `iv` changed at revision `rev`: drop every entry that covers one of them, and remember it so an
   * older read cannot store its answer afterwards. `rev` undefined (a write whose outcome is unknown) only
   * drops: if it was applied, the watch reports it with its revision.
   */
  invalidate(iv: KeyInterval, rev?: bigint): void {
    for (const key of this.index.overlapping(iv)) this.drop(key);
    if (rev === undefined || !this.enabled) return;
    if (coversAllKeys(iv)) {
      // Everything changed at `rev`: nothing older may be stored, so older log entries no longer matter;
      // newer ones stay (a write's answer and the watch's events arrive in any order).
      this.log = this.log.filter((inv) => inv.rev > rev);
      if (rev > this.logFloor) this.logFloor = rev;
      return;
    }
    this.log.push({ rev, iv });
    if (this.log.length > this.limits.maxLog) {
      const forgotten = this.log.shift()!;
      if (forgotten.rev > this.logFloor) this.logFloor = forgotten.rev;
    }
  }

  /** The watch has delivered every write up to `rev`. */
  advance(rev: bigint): void {
    if (rev > this.validThrough) this.validThrough = rev;
  }

  private drop(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    if (e.iv) this.index.remove(e.iv, key);
    this.bytes -= e.bytes;
  }

  private reset(): void {
    this.entries.clear();
    this.index.clear();
    this.bytes = 0;
    this.log = [];
    this.generation++;
  }
}

/** Keys are never empty, so a from-key range starting at "" or "\0" is the whole keyspace. */
function coversAllKeys(iv: KeyInterval): boolean {
  return iv === ALL_KEYS || (iv.end === undefined && (iv.start === "" || iv.start === "\0"));
}

/** What an entry costs in memory, roughly: key, the kvs' bytes and a fixed overhead per object. */
function estimateBytes(key: string, r: RangeResponse): number {
  let n = 2 * key.length + 256;
  for (const kv of r.kvs) n += kv.key.length + kv.value.length + 96;
  return n;
}
