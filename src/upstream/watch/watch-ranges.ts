/**
 * All broadcasts of one caller identity, grouped by range, and the rules that keep sharing exact:
 *
 * - join: a watcher rides a live broadcast only if that broadcast has delivered nothing the watcher still
 *   needs (`complete < nextRev`) and will deliver all of it; start_revision 0 only rides a caught-up one,
 *   and is told the revision it starts after in its created header.
 * - open: anything else gets its own upstream watch from its own revision, and etcd decides (history
 *   replay, compaction cancel), so the answer is etcd's.
 * - merge: after every upstream response, watchers of a broadcast move into a caught-up one of the same
 *   range that is not ahead of them, and the emptied broadcast is canceled upstream.
 * - death: a canceled, refused or broken broadcast is removed at once; its watchers re-attach from their
 *   own nextRev (no second created), or get etcd's compaction cancel when their revision is gone.
 *
 * Joining skips etcd's own checks at create time; watch-access asks them first. Inside a prefix of the
 * watch cache, watchers are fed from memory instead (cache-feed.ts).
 */
import { create } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { ResponseHeaderSchema, type ResponseHeader, type WatchResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { PrefixCache } from "../cache/prefix-cache.js";
import type { WatchCache } from "../cache/watch-cache.js";
import { intervalOf, keyString } from "../client/key-ranges.js";
import { CacheFeeds, createdHeader } from "./cache-feed.js";
import type { Upstream } from "../client/upstream.js";
import { WatchAccess } from "./watch-access.js";
import { WatchBroadcast } from "./watch-broadcast.js";
import type { WatchStream } from "./watch-stream.js";
import { UpstreamWatchStream, type UpstreamWatchOwner } from "./watch-upstream.js";
import type { Watcher } from "./watcher.js";

export interface WatchHubCounters {
  eventsCoalesced: number;
  lastHeader: ResponseHeader | undefined;
  /** --watch-cache-prefix: watchers inside its prefixes are fed from it (cache-feed.ts). */
  readonly cache?: WatchCache | undefined;
}

export class WatchRanges implements UpstreamWatchOwner {
  readonly feeds = new CacheFeeds((orphans) => this.lost([], orphans)); // fed by the watch cache, not etcd
  readonly upstream: UpstreamWatchStream;
  /** Broadcasts by group (key + range_end). Owned here; broadcasts only read their own entry. */
  readonly groups = new Map<string, Set<WatchBroadcast>>();
  /** Client streams of this identity. */
  readonly streams = new Set<WatchStream>();
  /** Asks etcd what its own watch create would have checked, for watchers that join instead. */
  readonly access: WatchAccess;
  private readonly mergesDue = new Set<string>();
  private lastHeader: ResponseHeader | undefined;

  constructor(readonly hub: WatchHubCounters, up: Upstream, headers: Headers, private readonly onIdle: () => void) {
    this.upstream = new UpstreamWatchStream(up, headers, this);
    this.access = new WatchAccess(up, headers, (h) => this.noteHeader(h));
  }

  /** The freshest header known, for answers etcd would stamp with its current revision. */
  header(): ResponseHeader {
    return this.lastHeader ?? this.hub.lastHeader ?? create(ResponseHeaderSchema, {});
  }

  noteHeader(h: ResponseHeader): void {
    if (!this.lastHeader || h.revision >= this.lastHeader.revision) this.lastHeader = h;
    if (!this.hub.lastHeader || h.revision >= this.hub.lastHeader.revision) this.hub.lastHeader = h;
  }

  /** A new watcher from a client's create request; its created (or refusal) follows. */
  async attachNew(w: Watcher): Promise<void> {
    const cache = this.cacheFor(w);
    if (cache) return this.attachToCache(w, cache);
    if (w.exclusive || !this.liveFor(w, 0n)) return this.pendingOrOpen(w);
    const check = await this.access.check(w.spec, w.spec.startRevision > 0n ? w.spec.startRevision : 0n);
    if (w.stream.closed) return;
    if (check.kind === "refused") return w.stream.refuse(w, this.header(), check.reason);
    if (check.kind === "compacted") return this.open(w); // etcd's answer: canceled with its compact_revision
    const now = check.header?.revision ?? 0n;
    const live = this.liveFor(w, now);
    if (!live) return this.pendingOrOpen(w);
    const h = check.header ?? this.header();
    let header = h;
    if (w.nextRev === undefined) {
      // Everything after `rev` is still to come from `live`, so that is where this watcher starts.
      const rev = live.complete > now ? live.complete : now;
      w.nextRev = rev + 1n;
      header = create(ResponseHeaderSchema, { ...h, revision: rev });
    }
    live.add(w);
    w.stream.created(w, header);
  }

  /**
   * A watcher that lost its broadcast or was parked. It joins only a broadcast still to be created from a
   * revision it needs, or opens its own from nextRev: etcd, not a guess, then says whether that revision
   * was compacted.
   */
  reattach(w: Watcher): void {
    if (w.ended || w.stream.closed) return;
    if (!w.createdSent) {
      this.attachNew(w).catch((err: unknown) => w.stream.fail(ConnectError.from(err)));
      return;
    }
    const cache = this.cacheFor(w);
    if (cache && (w.nextRev ?? 0n) > cache.history.floor) return this.feeds.feed(w, cache);
    const pending = w.exclusive ? undefined : this.pendingFor(w);
    if (pending) pending.add(w);
    else this.open(w);
  }

  detach(w: Watcher): void {
    w.broadcast?.remove(w);
  }

  /** Ends a broadcast no watcher needs any more. */
  retire(b: WatchBroadcast): void {
    this.drop(b);
    this.upstream.cancel(b);
    this.maybeIdle();
  }

  refused(b: WatchBroadcast, r: WatchResponse): void {
    this.drop(b);
    for (const w of b.takeAll()) {
      if (!w.createdSent) w.stream.refuse(w, r.header, r.cancelReason);
      else w.stream.end(w, { header: r.header, cancelReason: r.cancelReason });
    }
    this.maybeIdle();
  }

  /** etcd canceled a broadcast: compaction (compact_revision set) or anything else. */
  canceled(b: WatchBroadcast, r: WatchResponse): void {
    this.drop(b);
    for (const w of byNextRev(b.takeAll())) {
      // etcd cancels a watcher whose next revision is below the compaction (mvcc chooseAll: minRev < compactRev).
      if (r.compactRevision !== 0n && (w.nextRev ?? 0n) < r.compactRevision) w.stream.end(w, { header: r.header, compactRevision: r.compactRevision });
      else this.reattach(w);
    }
    this.maybeIdle();
  }

  lost(broadcasts: WatchBroadcast[], orphans: Watcher[] = []): void {
    for (const b of broadcasts) {
      this.drop(b);
      for (const w of b.takeAll()) orphans.push(w);
    }
    for (const w of byNextRev(orphans)) this.reattach(w);
    this.maybeIdle();
  }

  fatal(err: ConnectError, broadcasts: WatchBroadcast[]): void {
    for (const b of broadcasts) {
      this.drop(b);
      b.takeAll();
    }
    for (const s of [...this.streams]) s.fail(err);
    this.maybeIdle();
  }

  /** Merging runs once per group after the current burst of responses, not once per response. */
  scheduleMerge(group: string): void {
    if (this.mergesDue.has(group)) return;
    this.mergesDue.add(group);
    queueMicrotask(() => {
      this.mergesDue.delete(group);
      this.merge(group);
    });
  }

  removeStream(s: WatchStream): void {
    this.streams.delete(s);
    this.maybeIdle();
  }

  get idle(): boolean {
    return this.streams.size === 0 && this.groups.size === 0;
  }

  private maybeIdle(): void {
    if (this.idle) this.onIdle();
  }

  /**
   * The live broadcast a watcher may ride. start_revision 0: caught up, and not a future start that would
   * put the created revision past the store's (`now` is the newest revision etcd told us).
   * Else: nothing at or after nextRev delivered yet.
   */
  private liveFor(w: Watcher, now: bigint): WatchBroadcast | undefined {
    const set = this.groups.get(groupOf(w.spec.key, w.spec.rangeEnd));
    if (!set) return undefined;
    const known = now > this.header().revision ? now : this.header().revision;
    let best: WatchBroadcast | undefined;
    for (const b of set) {
      if (b.state !== "live" || b.exclusive) continue;
      if (w.nextRev === undefined ? !b.caughtUp || b.complete > known : b.complete >= w.nextRev) continue;
      if (!best || (b.caughtUp && !best.caughtUp) || (b.caughtUp === best.caughtUp && b.complete > best.complete)) best = b;
    }
    return best;
  }

  /** The watch cache's prefix holding this watcher's range, when the cache is live. */
  private cacheFor(w: Watcher): PrefixCache | undefined {
    const cache = w.exclusive ? undefined : this.hub.cache?.covering(intervalOf(w.spec.key, w.spec.rangeEnd));
    return cache?.ready ? cache : undefined;
  }

  /** Inside a cached prefix: etcd's create checks, then fed from memory if its start is in the history (else etcd's). */
  private async attachToCache(w: Watcher, cache: PrefixCache): Promise<void> {
    const start = w.spec.startRevision;
    const check = await this.access.check(w.spec, start > 0n ? start : 0n);
    if (w.stream.closed) return;
    if (check.kind === "refused") return w.stream.refuse(w, this.header(), check.reason);
    if (check.kind === "compacted" || !cache.ready || (start > 0n && start <= cache.history.floor)) return this.open(w);
    w.stream.created(w, createdHeader(w, cache, check.header));
    this.hub.cache!.served.watch++;
    this.feeds.feed(w, cache);
  }

  /** A broadcast whose created is still to come and that will deliver everything this watcher needs. */
  private pendingFor(w: Watcher): WatchBroadcast | undefined {
    const set = this.groups.get(groupOf(w.spec.key, w.spec.rangeEnd));
    if (!set) return undefined;
    for (const b of set) {
      if (b.state !== "pending" || b.exclusive) continue;
      if (w.nextRev === undefined ? b.startRevision === 0n : b.startRevision > 0n && b.startRevision <= w.nextRev) return b;
    }
    return undefined;
  }

  private pendingOrOpen(w: Watcher): void {
    const pending = w.exclusive ? undefined : this.pendingFor(w);
    if (pending) pending.add(w);
    else this.open(w);
  }

  /** A new upstream watch for `w`: from its nextRev once created, else from its start_revision as asked. */
  private open(w: Watcher): void {
    const start = w.createdSent ? w.nextRev ?? 0n : w.spec.startRevision;
    const group = groupOf(w.spec.key, w.spec.rangeEnd);
    const b = new WatchBroadcast(this, group, w.spec.key, w.spec.rangeEnd, start, w.exclusive);
    let set = this.groups.get(group);
    if (!set) this.groups.set(group, (set = new Set()));
    set.add(b);
    b.add(w);
    this.upstream.create(b);
  }

  private drop(b: WatchBroadcast): void {
    b.state = "dead";
    const set = this.groups.get(b.group);
    if (!set) return;
    set.delete(b);
    if (set.size === 0) this.groups.delete(b.group);
  }

  /**
   * Moves the watchers of every live broadcast into the caught-up one furthest behind, when it has
   * delivered nothing they still need: then it delivers everything they need, each drops what it has
   * seen (nextRev), and the emptied broadcasts are canceled upstream.
   */
  private merge(group: string): void {
    const set = this.groups.get(group);
    if (!set || set.size < 2) return;
    const live = [...set].filter((b) => b.state === "live" && !b.exclusive);
    let target: WatchBroadcast | undefined;
    for (const b of live) {
      if (!b.caughtUp) continue;
      if (!target || b.complete < target.complete || (b.complete === target.complete && b.receivers.size > target.receivers.size)) target = b;
    }
    if (!target) return;
    for (const a of live) {
      if (a === target) continue;
      const needs = minNextRev(a);
      if (needs === undefined || target.complete >= needs) continue;
      for (const w of a.takeAll()) target.add(w);
      this.retire(a);
    }
  }
}

/** Group key: exact key and range_end (etcd's proxy groups the same way). */
export function groupOf(key: Uint8Array, rangeEnd: Uint8Array): string {
  return `${keyString(key)}\u0100${keyString(rangeEnd)}`;
}

function minNextRev(b: WatchBroadcast): bigint | undefined {
  let min: bigint | undefined;
  for (const w of b.receivers) {
    if (w.nextRev === undefined) return undefined;
    if (min === undefined || w.nextRev < min) min = w.nextRev;
  }
  return min;
}

/** Lowest nextRev first: the first re-attach opens from the oldest revision and the rest can join it. */
function byNextRev(ws: Watcher[]): Watcher[] {
  return ws.sort((a, b) => ((a.nextRev ?? 0n) < (b.nextRev ?? 0n) ? -1 : (a.nextRev ?? 0n) > (b.nextRev ?? 0n) ? 1 : 0));
}
