/**
 * One upstream watch (s-watcher) and the client watchers it feeds. It always asks etcd for prev_kv and
 * progress_notify and no filters, so any c-watcher on the same range can ride it; each watcher strips what
 * it did not ask for. What happens to the watchers when it dies is WatchRanges' call, not this file's.
 */
import type { ResponseHeader, WatchResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import type { WatchRanges } from "./watch-ranges.js";
import type { Watcher, WatcherFeed } from "./watcher.js";

export type BroadcastState =
  /** Create sent; etcd's created not seen yet. */
  | "pending"
  /** Created and delivering. */
  | "live"
  /** Canceled, refused, or its upstream stream broke. Never joined again (etcd's proxy did: #10650). */
  | "dead";

export class WatchBroadcast implements WatcherFeed {
  /** Owned by WatchRanges (join, merge, detach) and by this class (fan-out). */
  readonly receivers = new Set<Watcher>();
  state: BroadcastState = "pending";
  /**
   * Every event of this range up to this revision has reached us, in order: nothing above it has been
   * delivered and everything above it will be. Only etcd's own ordered messages move it (events, this
   * watch's progress notifications, its created header), never a guess, so joins and merges stay exact.
   */
  complete: bigint;
  /** Header revision of etcd's created: the store's revision when the watch began. */
  createdRev = 0n;
  /** The watch_id this proxy chose for it on its upstream stream. */
  upstreamId = 0n;
  /** A cancel went upstream; whatever etcd still says about this watch is ignored. */
  canceledByUs = false;

  constructor(
    readonly ranges: WatchRanges,
    /** Key of its group: same key and range_end (a prefix watch and a key watch never share). */
    readonly group: string,
    readonly key: Uint8Array,
    readonly rangeEnd: Uint8Array,
    readonly startRevision: bigint,
    /** Never shared and never merged (see Watcher.exclusive). */
    readonly exclusive: boolean,
  ) {
    this.complete = startRevision !== 0n ? startRevision - 1n : 0n;
  }

  /** Live and past the history it had to replay: what remains behind `complete` is only in flight. */
  get caughtUp(): boolean {
    return this.state === "live" && this.complete >= this.createdRev;
  }

  add(w: Watcher): void {
    this.receivers.add(w);
    w.broadcast = this;
  }

  /** Takes a watcher off; the last one leaving ends the upstream watch (no leak, no idle s-watcher). */
  remove(w: Watcher): void {
    this.receivers.delete(w);
    if (w.broadcast === this) w.broadcast = undefined;
    if (this.receivers.size === 0 && this.state !== "dead") this.ranges.retire(this);
  }

  /** Takes every watcher off without retiring (the caller re-homes them). */
  takeAll(): Watcher[] {
    const all = [...this.receivers];
    this.receivers.clear();
    for (const w of all) if (w.broadcast === this) w.broadcast = undefined;
    return all;
  }

  onCreated(header: ResponseHeader | undefined): void {
    this.state = "live";
    this.createdRev = header?.revision ?? 0n;
    if (this.startRevision === 0n) this.complete = this.createdRev;
    for (const w of [...this.receivers]) {
      if (w.createdSent) continue; // a re-attached watcher: clients match created by position, send it once
      if (w.nextRev === undefined) w.nextRev = this.createdRev + 1n;
      w.stream.created(w, header);
    }
  }

  /** etcd answered the create with created+canceled (auth, empty range). */
  onRefused(r: WatchResponse): void {
    this.state = "dead";
    this.ranges.refused(this, r);
  }

  /** Anything etcd sends for this watch after created: events, progress, or its cancel. */
  onResponse(r: WatchResponse): void {
    if (r.canceled) {
      this.state = "dead";
      this.ranges.canceled(this, r);
      return;
    }
    if (r.events.length > 0) {
      // One txn's events share a revision and arrive in one response; the last event is the newest.
      const last = r.events[r.events.length - 1]!.kv?.modRevision ?? 0n;
      if (last > this.complete) this.complete = last;
      this.ranges.hub.eventsCoalesced += Math.max(0, this.receivers.size - 1);
    } else if (r.header && r.header.revision > this.complete) {
      // etcd sends a watcher's progress only once it is synced, in order with its events.
      this.complete = r.header.revision;
    }
    for (const w of [...this.receivers]) {
      if (w.broadcast !== this) continue; // parked by an earlier delivery in this loop
      if (!w.deliver(r, this.complete)) w.stream.park(w);
    }
    this.ranges.scheduleMerge(this.group);
  }
}
