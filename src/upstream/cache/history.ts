/**
 * The recent events of one cached prefix, oldest first, one entry per revision (a txn's events share
 * one). It serves two things: watches from a past revision (replay), and reads at a past revision (a view:
 * the current keys with every later change undone through its prev_kv).
 *
 * `floor`: the history is complete above it. A watch from start S can be replayed when S > floor; a view
 * at revision V can be built when V >= floor. It rises when old entries are dropped, and when an event
 * arrives that cannot be undone (a prev_kv etcd could not give: it had compacted the revision before).
 */
import { Event_EventType, type Event, type KeyValue } from "../../../gen/mvccpb/kv_pb.js";
import { keyString, type KeyInterval } from "../client/key-ranges.js";

export interface HistoryLimits {
  /**
   * 100,000 events. Kubernetes sizes its watch-cache ring to cover its bookmark interval plus a margin;
   * ours covers `maxAgeMs` of a busy prefix (about 300 writes/s) and stays well below `maxBytes` for
   * small values.
   */
  maxEvents: number;
  /** 64 MiB of keys, values and prev values: the same budget as the range cache. */
  maxBytes: number;
  /**
   * 5 minutes: a client that lost its stream reconnects within seconds (etcd's clients back off to at
   * most a few seconds), and a proxy taking over from another one sees its clients back within a
   * minute; older starts get an upstream watch of their own (exact, just not shared).
   */
  maxAgeMs: number;
}

export const DEFAULT_HISTORY: HistoryLimits = { maxEvents: 100_000, maxBytes: 64 * 1024 * 1024, maxAgeMs: 5 * 60_000 };

export interface RevisionEvents {
  readonly rev: bigint;
  readonly events: Event[];
  readonly bytes: number;
  readonly at: number;
}

export class History {
  private entries: RevisionEvents[] = [];
  /** Index of the oldest live entry (entries before it are dropped; compacted away now and then). */
  private head = 0;
  events = 0;
  bytes = 0;
  floor: bigint;

  constructor(readonly limits: HistoryLimits, start: bigint) {
    this.floor = start;
  }

  get length(): number {
    return this.entries.length - this.head;
  }

  /** Age (ms) of the oldest entry, 0 when empty. */
  age(now: number): number {
    return this.length === 0 ? 0 : now - this.entries[this.head]!.at;
  }

  append(rev: bigint, events: Event[], now: number): void {
    let bytes = 0;
    for (const e of events) {
      bytes += 96 + size(e.kv) + size(e.prevKv);
      // Undoing this event needs what the key held before: a delete always had a value, a put of a key
      // at version > 1 too. Without it no view or replay can reach back past this revision.
      if (!e.prevKv && (e.type === Event_EventType.DELETE || (e.kv?.version ?? 0n) > 1n)) this.floor = rev;
    }
    this.entries.push({ rev, events, bytes, at: now });
    this.events += events.length;
    this.bytes += bytes;
    this.trim(now);
  }

  /** Drops what is over the bounds; the floor rises to the newest revision dropped. */
  trim(now: number): void {
    const l = this.limits;
    while (this.length > 0) {
      const oldest = this.entries[this.head]!;
      if (this.events <= l.maxEvents && this.bytes <= l.maxBytes && now - oldest.at <= l.maxAgeMs) break;
      this.head++;
      this.events -= oldest.events.length;
      this.bytes -= oldest.bytes;
      if (oldest.rev > this.floor) this.floor = oldest.rev;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** Entries with a revision >= `from`, oldest first. */
  *since(from: bigint): Generator<RevisionEvents> {
    for (let i = this.firstAtOrAfter(from); i < this.entries.length; i++) yield this.entries[i]!;
  }

  /**
   * What the keys of `iv` changed by events after `rev` held at `rev`: key → its value then, or null if
   * it did not exist. Newest first, so the oldest change after `rev` (the one that knew the old value) wins.
   */
  undo(rev: bigint, iv: KeyInterval): Map<string, KeyValue | null> {
    const before = new Map<string, KeyValue | null>();
    const from = this.firstAtOrAfter(rev + 1n);
    for (let i = this.entries.length - 1; i >= from; i--) {
      const events = this.entries[i]!.events;
      for (let j = events.length - 1; j >= 0; j--) {
        const e = events[j]!;
        const key = keyString(e.kv!.key);
        if (key < iv.start || (iv.end !== undefined && key >= iv.end)) continue;
        before.set(key, e.prevKv ?? null);
      }
    }
    return before;
  }

  private firstAtOrAfter(rev: bigint): number {
    let lo = this.head;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.entries[mid]!.rev < rev) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function size(kv: KeyValue | undefined): number {
  return kv ? kv.key.length + kv.value.length : 0;
}
