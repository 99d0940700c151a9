/** Percentiles and medians, the only statistics the benchmark reports. */

/** Nearest-rank percentile of an ascending array; undefined when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function sortedCopy(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values as ArrayLike<number>).sort();
}

/** Median of the defined values; undefined when none. */
export function median(values: (number | undefined)[]): number | undefined {
  const v = values.filter((x): x is number => x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1]! + v[mid]!) / 2;
}

/**
 * A growable Float64Array: latencies of a run without one JS number object each. Bounded at MAX_SAMPLES
 * (160 MB); past it, samples are dropped and `dropped` says how many (no run of this benchmark gets near).
 */
export class Samples {
  static readonly MAX_SAMPLES = 20_000_000;
  private buf = new Float64Array(4096);
  length = 0;
  dropped = 0;

  push(v: number): void {
    if (this.length === Samples.MAX_SAMPLES) {
      this.dropped++;
      return;
    }
    if (this.length === this.buf.length) {
      const next = new Float64Array(Math.min(this.buf.length * 2, Samples.MAX_SAMPLES));
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = v;
  }

  toArray(): Float64Array {
    return this.buf.slice(0, this.length);
  }
}
