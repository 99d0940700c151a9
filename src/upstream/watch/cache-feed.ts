/**
 * Client watchers of one range of one caller identity fed by the watch cache (upstream/cache/) instead of
 * an upstream watch: etcd sees no watcher for them at all. A watcher joins by replaying the cache's
 * history from its next revision, batched as etcd batches a catch-up (at most 1,000 revisions a response,
 * mvcc watchBatchMaxRevs), then takes the cache's live responses, the same ones a synced watcher at etcd
 * gets, through the same Watcher.deliver as a shared upstream watch: filters, prev_kv, fragments,
 * progress notifications and parking behave alike. When the cache breaks, its watchers re-attach as
 * after any broken upstream watch, from their own revisions.
 */
import { create } from "@bufbuild/protobuf";
import { ResponseHeaderSchema, WatchResponseSchema, type ResponseHeader, type WatchResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { Event } from "../../../gen/mvccpb/kv_pb.js";
import type { CacheListener, PrefixCache } from "../cache/prefix-cache.js";
import { intervalOf, keyString, type KeyInterval } from "../client/key-ranges.js";
import type { WatcherFeed, Watcher } from "./watcher.js";

/** How long a progress_request of a stream fed from the cache waits for etcd's progress answer. */
const PROGRESS_WAIT_MS = 1_000;
/** etcd's watchBatchMaxRevs: revisions in one catch-up response. */
const MAX_REVS_PER_RESPONSE = 1000;

interface FeedOwner {
  /** The feed has no watcher left (or its cache broke): forget it. */
  dropFeed(feed: CacheFeed): void;
  /** Its cache broke: these watchers re-attach from their own revisions. */
  orphaned(watchers: Watcher[]): void;
}

/** The feeds of one caller identity, by group (key + range_end). A feed goes with its last watcher. */
export class CacheFeeds implements FeedOwner {
  private readonly byGroup = new Map<string, CacheFeed>();

  constructor(readonly orphaned: (watchers: Watcher[]) => void) {}

  get size(): number {
    return this.byGroup.size;
  }

  /** Replays `w`'s missed history, then feeds it live (unless it was parked on the way). */
  feed(w: Watcher, cache: PrefixCache): void {
    const iv = intervalOf(w.spec.key, w.spec.rangeEnd)!;
    if (!replay(w, iv, cache)) return;
    const group = `${keyString(w.spec.key)}\u0100${keyString(w.spec.rangeEnd)}`;
    let feed = this.byGroup.get(group);
    if (!feed || feed.cache !== cache) this.byGroup.set(group, (feed = new CacheFeed(this, group, iv, cache)));
    feed.add(w);
  }

  dropFeed(feed: CacheFeed): void {
    if (this.byGroup.get(feed.group) === feed) this.byGroup.delete(feed.group);
  }
}

export class CacheFeed implements CacheListener, WatcherFeed {
  readonly receivers = new Set<Watcher>();
  /** Each watcher's count of event responses at the last progress tick. */
  private readonly eventsAtTick = new WeakMap<Watcher, number>();

  constructor(private readonly owner: FeedOwner, readonly group: string, readonly iv: KeyInterval, readonly cache: PrefixCache) {
    cache.listeners.add(this);
  }

  /** Everything up to here has reached this feed's watchers (what a progress answer may promise them). */
  deliveredUpTo(): bigint {
    return this.cache.rev;
  }

  latest(): Promise<bigint> {
    return this.cache.latest(PROGRESS_WAIT_MS);
  }

  add(w: Watcher): void {
    if (!this.eventsAtTick.has(w)) this.eventsAtTick.set(w, w.eventResponses);
    this.receivers.add(w);
    w.broadcast = this;
  }

  remove(w: Watcher): void {
    this.receivers.delete(w);
    if (w.broadcast === this) w.broadcast = undefined;
    if (this.receivers.size === 0) this.close();
  }

  events(r: WatchResponse, rev: bigint): void {
    const inside = r.events.every((e) => this.holds(e)) ? r : this.narrowed(r);
    for (const w of [...this.receivers]) {
      if (w.broadcast !== this) continue;
      if (!inside) {
        if ((w.nextRev ?? 0n) <= rev) w.nextRev = rev + 1n;
      } else if (!w.deliver(inside, rev)) {
        w.stream.park(w);
      }
    }
  }

  /** etcd's per-watch progress: to each progress_notify watcher that was sent no event since the last tick. */
  tick(rev: bigint): void {
    const r = create(WatchResponseSchema, { header: this.cache.headerAt(rev), watchId: 0n });
    for (const w of [...this.receivers]) {
      const sent = w.eventResponses;
      const quiet = this.eventsAtTick.get(w) === sent;
      this.eventsAtTick.set(w, sent);
      if (quiet && w.broadcast === this && w.spec.progressNotify && !w.deliver(r, rev)) w.stream.park(w);
    }
  }

  lost(): void {
    const ws = [...this.receivers];
    this.receivers.clear();
    for (const w of ws) if (w.broadcast === this) w.broadcast = undefined;
    this.close();
    this.owner.orphaned(ws);
  }

  private close(): void {
    this.cache.listeners.delete(this);
    this.owner.dropFeed(this);
  }

  private holds(e: Event): boolean {
    const k = keyString(e.kv!.key);
    return k >= this.iv.start && (this.iv.end === undefined || k < this.iv.end);
  }

  private narrowed(r: WatchResponse): WatchResponse | undefined {
    const events = r.events.filter((e) => this.holds(e));
    if (events.length === 0) return undefined;
    const out = create(WatchResponseSchema, { watchId: r.watchId });
    out.header = r.header;
    out.events = events;
    return out;
  }
}

/**
 * The header of the created answer of a watcher about to be fed from `cache`: etcd's (`etcd`, from the
 * create-time check; the cache's for a future start). A start_revision 0 watch starts after etcd's current
 * revision, as at etcd: events up to it still on their way to the cache are not for it.
 */
export function createdHeader(w: Watcher, cache: PrefixCache, etcd: ResponseHeader | undefined): ResponseHeader {
  const header = etcd ?? cache.headerAt(cache.rev);
  if (w.spec.startRevision !== 0n) return header;
  const now = header.revision > cache.rev ? header.revision : cache.rev;
  w.nextRev = now + 1n;
  return cache.headerAt(now, header);
}

/**
 * Sends `w` the cache's history of `iv` from its nextRev. False when its client's buffer filled up: it
 * was parked where it stands, and comes back (here again, if the history still reaches) once the client
 * has read. True: it has everything up to the cache's revision.
 */
export function replay(w: Watcher, iv: KeyInterval, cache: PrefixCache): boolean {
  const header = cache.headerAt(cache.rev);
  let batch: Event[] = [];
  let revs = 0;
  let last = 0n;
  const flush = (complete: bigint): boolean => {
    if (batch.length === 0) return true;
    const r = create(WatchResponseSchema, { watchId: w.id });
    r.header = header;
    r.events = batch;
    batch = [];
    revs = 0;
    return w.deliver(r, complete);
  };
  for (const entry of cache.history.since(w.nextRev ?? 0n)) {
    let first = true;
    for (const e of entry.events) {
      const k = keyString(e.kv!.key);
      if (k < iv.start || (iv.end !== undefined && k >= iv.end)) continue;
      if (first) {
        if (revs === MAX_REVS_PER_RESPONSE && !flush(last)) return park(w);
        revs++;
        first = false;
      }
      batch.push(e);
      last = entry.rev;
    }
  }
  if (!flush(cache.rev)) return park(w);
  if ((w.nextRev ?? 0n) <= cache.rev) w.nextRev = cache.rev + 1n;
  return true;
}

function park(w: Watcher): false {
  w.stream.park(w);
  return false;
}

/**
 * A progress answer for a client stream: etcd's `h` speaks for the upstream watches; watchers fed by the
 * watch cache have everything up to the cache's revision only, so it promises no more than that.
 */
export function capByCaches(watchers: Iterable<Watcher>, h: ResponseHeader): ResponseHeader {
  let rev = h.revision;
  for (const w of watchers) {
    const upTo = w.broadcast?.deliveredUpTo?.();
    if (upTo === undefined) continue;
    const own = settledUpTo(w, upTo);
    if (own < rev) rev = own;
  }
  return rev === h.revision ? h : create(ResponseHeaderSchema, { ...h, revision: rev });
}

/**
 * When every live watcher of a client stream is fed by the watch cache, etcd has no watch of ours to
 * answer its progress_request for (etcd 3.5 never answers a stream without watches), so the caches
 * answer: the revision up to which all of them hold everything, after asking etcd's head where that is
 * ordered. Undefined: etcd answers (some watcher rides an upstream watch, is parked, or there is none).
 */
export function progressFromCaches(watchers: Iterable<Watcher>, base: ResponseHeader): Promise<ResponseHeader> | undefined {
  const fed: Watcher[] = [];
  const feeds = new Set<WatcherFeed>();
  for (const w of watchers) {
    if (w.ended) continue;
    if (!w.broadcast?.latest) return undefined;
    fed.push(w);
    feeds.add(w.broadcast);
  }
  if (feeds.size === 0) return undefined;
  return Promise.all([...feeds].map(async (f) => [f, await f.latest!()] as const)).then((answers) => {
    const latest = new Map(answers);
    let rev: bigint | undefined;
    for (const w of fed) {
      const own = settledUpTo(w, latest.get(w.broadcast!) ?? 0n);
      if (rev === undefined || own < rev) rev = own;
    }
    return create(ResponseHeaderSchema, { ...base, revision: rev ?? 0n });
  });
}

/**
 * What a progress notification may say for one fed watcher: every event up to the feed's revision has
 * reached it, and every event below its nextRev has reached it or was never for it (a start_revision 0
 * watcher starts after the revision of its created header, which may be ahead of the cache). The later
 * of the two, so an answer does not fall below that created header.
 */
function settledUpTo(w: Watcher, feedRev: bigint): bigint {
  const settled = (w.nextRev ?? 1n) - 1n;
  return feedRev > settled ? feedRev : settled;
}
