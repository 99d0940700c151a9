/**
 * One client watcher (c-watcher): what one WatchCreateRequest of one client asked for, and where it stands.
 * Its broadcast (the shared upstream watch) hands it every upstream response; the watcher keeps its own
 * watch_id, filters, prev_kv, progress_notify and fragment, and the revision bookkeeping that makes the
 * shared stream exact for it: it takes each event with revision >= nextRev once, and nothing older.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  WatchCreateRequest_FilterType,
  WatchResponseSchema,
  type ResponseHeader,
  type WatchCreateRequest,
  type WatchResponse,
} from "../../../gen/etcdserverpb/rpc_pb.js";
import { Event_EventType, type Event } from "../../../gen/mvccpb/kv_pb.js";
import { keyString } from "../client/key-ranges.js";
import { eventAsAsked, sharedEvents } from "../../wire/watch-encoding.js";
import type { WatchStream } from "./watch-stream.js";

/**
 * etcd's fragment threshold: its --max-request-bytes default (1.5 MiB) plus the 512 KiB gRPC overhead it
 * adds (v3rpc grpcOverheadBytes). A fragmenting watcher gets responses split at this size, as from etcd.
 */
const FRAGMENT_BYTES = 1.5 * 1024 * 1024 + 512 * 1024;

/** A create request after etcd's own normalisation (v3rpc/watch.go recvLoop). */
export interface WatcherSpec {
  /** Never empty: etcd watches "\0" (the smallest key) when the key is empty. */
  key: Uint8Array;
  /** Empty: one key. "\0": every key >= key. Else [key, range_end). */
  rangeEnd: Uint8Array;
  startRevision: bigint;
  noPut: boolean;
  noDelete: boolean;
  prevKv: boolean;
  progressNotify: boolean;
  fragment: boolean;
  /** 0: the stream assigns one, as etcd does (clientv3.AutoWatchID). */
  watchId: bigint;
}

export function watcherSpec(r: WatchCreateRequest): WatcherSpec {
  return {
    key: r.key.length === 0 ? new Uint8Array([0]) : r.key,
    rangeEnd: r.rangeEnd,
    startRevision: r.startRevision,
    noPut: r.filters.includes(WatchCreateRequest_FilterType.NOPUT),
    noDelete: r.filters.includes(WatchCreateRequest_FilterType.NODELETE),
    prevKv: r.prevKv,
    progressNotify: r.progressNotify,
    fragment: r.fragment,
    watchId: r.watchId,
  };
}

/** etcd's ErrEmptyWatcherRange test: a range (not one key, not from-key) whose end is not after its key. */
export function isEmptyRange(s: WatcherSpec): boolean {
  const fromKey = s.rangeEnd.length === 1 && s.rangeEnd[0] === 0;
  return s.rangeEnd.length > 0 && !fromKey && keyString(s.key) >= keyString(s.rangeEnd);
}

/** A source of responses for watchers: watch-broadcast.ts (an upstream watch) or cache-feed.ts. */
export interface WatcherFeed {
  /** Takes the watcher off (it was parked, canceled or its stream ended). */
  remove(w: Watcher): void;
  /** The revision up to which every event has reached the watchers, when it is not etcd's stream order that says so. */
  deliveredUpTo?(): bigint;
  /** The same, after asking etcd where it can (a progress answer for a stream etcd has no watch of ours on). */
  latest?(): Promise<bigint>;
}

export class Watcher {
  /** The watch_id the client knows it by; -1 until `created` was sent. */
  id = -1n;
  /** The smallest revision still owed to the client. undefined: start_revision 0 and not created yet. */
  nextRev: bigint | undefined;
  /** Highest header revision sent for this watcher, so a progress notification never goes back. */
  lastRev = 0n;
  createdSent = false;
  /** Event responses sent so far (the watch cache's progress ticks skip a watcher that had some). */
  eventResponses = 0;
  /** Set once etcd's answer would have ended it (compaction, refused re-watch); it keeps its id until canceled. */
  ended = false;
  /** What feeds it (a shared upstream watch or the watch cache); undefined while parked, re-attaching or ended. Owned by WatchRanges. */
  broadcast: WatcherFeed | undefined;
  /** Resolves when its created (or the refusal) is queued for the client. */
  readonly settled: Promise<void>;
  settle!: () => void;

  constructor(readonly stream: WatchStream, readonly spec: WatcherSpec) {
    this.nextRev = spec.startRevision !== 0n ? spec.startRevision : undefined;
    this.settled = new Promise((resolve) => { this.settle = resolve; });
  }

  /**
   * Starts with a negative start_revision or an empty range never share: etcd's answer to them is odd
   * (a cancel with compact_revision -1, "range is empty"), so they get their own upstream watch as asked.
   */
  get exclusive(): boolean {
    return this.spec.startRevision < 0n || isEmptyRange(this.spec);
  }

  /**
   * One upstream response for this watcher. `complete`: every event of the range up to that revision has
   * now reached the broadcast. False when the client's buffer is full; nothing was queued, nextRev did not
   * move, and the caller parks the watcher, so nothing is lost.
   */
  deliver(r: WatchResponse, complete: bigint): boolean {
    const next = this.nextRev ?? 0n;
    if (r.events.length > 0) {
      // The common case: every event is new to this watcher, so watchers with its filters share one array
      // (watch-encoding.ts). A watcher still catching up (after a merge or re-attach) gets its own.
      const events = r.events.every((e) => (e.kv?.modRevision ?? 0n) >= next)
        ? sharedEvents(r.events, this.spec, (e) => this.wants(e, 0n))
        : r.events.filter((e) => this.wants(e, next)).map((e) => eventAsAsked(e, this.spec.prevKv));
      if (events.length > 0) {
        // Assigned, not passed to create: create copies arrays, and the shared one must stay shared.
        const response = create(WatchResponseSchema, { watchId: this.id });
        response.header = r.header;
        response.events = events;
        const out = this.fragments(response);
        if (!this.stream.offer(out)) return false;
        this.eventResponses++;
        this.noteHeader(r.header);
      }
    } else if (this.spec.progressNotify && r.header && r.header.revision >= this.lastRev) {
      // A progress notification is a hint: dropped (not parked) when the buffer is full.
      if (this.stream.offer([create(WatchResponseSchema, { header: r.header, watchId: this.id })])) this.noteHeader(r.header);
    }
    if (complete + 1n > next) this.nextRev = complete + 1n;
    return true;
  }

  noteHeader(h: ResponseHeader | undefined): void {
    if (h && h.revision > this.lastRev) this.lastRev = h.revision;
  }

  private wants(e: Event, next: bigint): boolean {
    if ((e.kv?.modRevision ?? 0n) < next) return false;
    if (this.spec.noPut && e.type === Event_EventType.PUT) return false;
    if (this.spec.noDelete && e.type === Event_EventType.DELETE) return false;
    return true;
  }

  /** etcd's sendFragments: only when asked, only above the limit, and never splitting a single event. */
  private fragments(r: WatchResponse): WatchResponse[] {
    if (!this.spec.fragment || r.events.length < 2 || toBinary(WatchResponseSchema, r).length < FRAGMENT_BYTES) return [r];
    const out: WatchResponse[] = [];
    let cur: Event[] = [];
    for (const e of r.events) {
      cur.push(e);
      if (cur.length > 1 && toBinary(WatchResponseSchema, create(WatchResponseSchema, { header: r.header, watchId: r.watchId, events: cur, fragment: true })).length >= FRAGMENT_BYTES) {
        cur.pop();
        out.push(create(WatchResponseSchema, { header: r.header, watchId: r.watchId, events: cur, fragment: true }));
        cur = [e];
      }
    }
    out.push(create(WatchResponseSchema, { header: r.header, watchId: r.watchId, events: cur, fragment: false }));
    return out;
  }
}
