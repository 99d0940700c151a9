/**
 * The current keys of one cached prefix, in etcd's order, for range scans. Keys are latin1 strings (one
 * char per byte: key-ranges.ts), so a sorted array of them is sorted as etcd's index is; a binary search
 * finds where a range starts. An insert or delete moves the tail of the array (a memmove): cheap up to
 * hundreds of thousands of keys, which the cache's byte bound keeps it under.
 */
import type { KeyValue } from "../../../gen/mvccpb/kv_pb.js";
import type { KeyInterval } from "../client/key-ranges.js";

/** What one entry costs besides its key and value bytes (the object, the map slot, the array slot). */
export const ENTRY_OVERHEAD_BYTES = 160;

export function kvBytes(kv: KeyValue): number {
  return ENTRY_OVERHEAD_BYTES + kv.key.length * 2 + kv.value.length;
}

export class KeyStore {
  private readonly byKey = new Map<string, KeyValue>();
  private readonly sorted: string[] = [];
  bytes = 0;

  get size(): number {
    return this.byKey.size;
  }

  get(key: string): KeyValue | undefined {
    return this.byKey.get(key);
  }

  set(key: string, kv: KeyValue): void {
    const old = this.byKey.get(key);
    if (old) this.bytes -= kvBytes(old);
    else this.sorted.splice(this.lowerBound(key), 0, key);
    this.byKey.set(key, kv);
    this.bytes += kvBytes(kv);
  }

  delete(key: string): void {
    const old = this.byKey.get(key);
    if (!old) return;
    this.byKey.delete(key);
    this.bytes -= kvBytes(old);
    this.sorted.splice(this.lowerBound(key), 1);
  }

  /** The entries inside `iv`, in key order. */
  scan(iv: KeyInterval): KeyValue[] {
    const out: KeyValue[] = [];
    for (let i = this.lowerBound(iv.start); i < this.sorted.length; i++) {
      const k = this.sorted[i]!;
      if (iv.end !== undefined && k >= iv.end) break;
      out.push(this.byKey.get(k)!);
    }
    return out;
  }

  /** How many entries are inside `iv`, without building them. */
  count(iv: KeyInterval): number {
    const from = this.lowerBound(iv.start);
    const to = iv.end === undefined ? this.sorted.length : this.lowerBound(iv.end);
    return Math.max(0, to - from);
  }

  clear(): void {
    this.byKey.clear();
    this.sorted.length = 0;
    this.bytes = 0;
  }

  /** The first index whose key is >= `key`. */
  private lowerBound(key: string): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.sorted[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
