/**
 * etcd key ranges as the range cache needs them: `[key, range_end)` intervals with etcd's special cases,
 * and an index from interval to the cache entries it covers, so one write finds the entries it makes stale.
 *
 * Keys are held as latin1 strings (one char per byte): JS compares strings by UTF-16 code unit, which for
 * chars 0..255 is exactly etcd's byte order, so `<` on strings is `bytes.Compare`.
 */

/** Half-open `[start, end)`; `end === undefined` is +∞ (etcd's range_end "\0", "all keys from key on"). */
export interface KeyInterval {
  readonly start: string;
  readonly end: string | undefined;
}

/** Every key etcd can hold (keys are never empty, so "" as the start misses nothing). */
export const ALL_KEYS: KeyInterval = { start: "", end: undefined };

const CHUNK = 8192;

/** A byte key as a latin1 string (see the file comment for why). */
export function keyString(b: Uint8Array): string {
  if (b.length <= CHUNK) return String.fromCharCode(...b);
  let s = "";
  for (let i = 0; i < b.length; i += CHUNK) s += String.fromCharCode(...b.subarray(i, i + CHUNK));
  return s;
}

/**
 * The keys a request with this key and range_end touches, as etcd reads them: empty range_end is the one
 * key; range_end "\0" is every key >= key (clientv3's from-key, and with key "\0" the whole keyspace, which
 * etcd's proxy got wrong: #22397); otherwise `[key, range_end)`. `undefined` when the range holds no key
 * (range_end <= key), which no write can change.
 */
export function intervalOf(key: Uint8Array, rangeEnd: Uint8Array): KeyInterval | undefined {
  const start = keyString(key);
  if (rangeEnd.length === 0) return { start, end: start + "\0" };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { start, end: undefined };
  const end = keyString(rangeEnd);
  return end > start ? { start, end } : undefined;
}

/** The interval of exactly one key. */
export function pointOf(key: Uint8Array): KeyInterval {
  const start = keyString(key);
  return { start, end: start + "\0" };
}

export function overlaps(a: KeyInterval, b: KeyInterval): boolean {
  return (b.end === undefined || a.start < b.end) && (a.end === undefined || b.start < a.end);
}

function isPoint(iv: KeyInterval): boolean {
  return iv.end !== undefined && iv.end.length === iv.start.length + 1 && iv.end === iv.start + "\0";
}

/** Chars above 0xff never occur in a key string, so they separate start and end without ambiguity. */
const spanId = (iv: KeyInterval) => `${iv.start}\u0100${iv.end ?? "\u0101"}`;

/**
 * Which ids (cache keys) sit on which intervals. Single-key entries, by far the most common, are found in
 * O(1) by a point write; spans (prefixes, from-key, ranges) are scanned, grouped by distinct interval so
 * the same prefix read by many callers is one comparison. Owned by one RangeCache; not shared.
 */
export class KeyRanges<T> {
  private readonly points = new Map<string, Set<T>>();
  private readonly spans = new Map<string, { iv: KeyInterval; ids: Set<T> }>();

  add(iv: KeyInterval, id: T): void {
    if (isPoint(iv)) {
      let set = this.points.get(iv.start);
      if (!set) this.points.set(iv.start, (set = new Set()));
      set.add(id);
      return;
    }
    const k = spanId(iv);
    let span = this.spans.get(k);
    if (!span) this.spans.set(k, (span = { iv, ids: new Set() }));
    span.ids.add(id);
  }

  remove(iv: KeyInterval, id: T): void {
    if (isPoint(iv)) {
      const set = this.points.get(iv.start);
      if (set?.delete(id) && set.size === 0) this.points.delete(iv.start);
      return;
    }
    const k = spanId(iv);
    const span = this.spans.get(k);
    if (span?.ids.delete(id) && span.ids.size === 0) this.spans.delete(k);
  }

  /** Every id whose interval shares at least one key with `iv`. */
  overlapping(iv: KeyInterval): T[] {
    const out: T[] = [];
    if (isPoint(iv)) {
      const set = this.points.get(iv.start);
      if (set) for (const id of set) out.push(id);
    } else {
      for (const [key, set] of this.points) if (overlaps({ start: key, end: key + "\0" }, iv)) for (const id of set) out.push(id);
    }
    // Loops, not push(...set): a spread of a large set overflows the stack.
    for (const span of this.spans.values()) if (overlaps(span.iv, iv)) for (const id of span.ids) out.push(id);
    return out;
  }

  clear(): void {
    this.points.clear();
    this.spans.clear();
  }
}
