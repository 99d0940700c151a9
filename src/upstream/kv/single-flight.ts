/**
 * Identical concurrent reads share one upstream call, where sharing keeps etcd's guarantees:
 * - serializable: a caller may join a call already on its way to etcd. A serializable read promises only
 *   some committed state, and the shared answer is as fresh as one the caller could have got itself;
 * - linearizable: a caller may join only a call that has NOT been sent yet. The call then starts after
 *   every caller in it did, so it reflects every write completed before any of them started. Calls are
 *   held back by `schedule` (coalesced-kv.ts: until the current I/O turn ends), so callers arriving
 *   together share one.
 * The key must name everything that changes the answer, including the caller's identity (token): one
 * user's call never answers another's.
 */
import type { KeyInterval } from "../client/key-ranges.js";
import { overlaps } from "../client/key-ranges.js";

export type ReadMode = "serializable" | "linearizable";

export interface SingleFlightOptions {
  /**
   * Callers sharing one call. 1000: the fan-out of one answer stays cheap, and a burst larger than that
   * costs etcd one more call per 1000 callers. When a call is full, the next caller starts a new call and
   * later callers join that one; nobody is refused.
   */
  maxWaiters: number;
  /** Runs `send` once the callers arriving now have joined. Default: a microtask (pure; no I/O turn to wait for). */
  schedule: (send: () => void) => void;
}

export const DEFAULT_SINGLE_FLIGHT: SingleFlightOptions = {
  maxWaiters: 1000,
  schedule: (send) => queueMicrotask(send),
};

interface Flight<T> {
  readonly id: string;
  readonly iv: KeyInterval | undefined;
  /** Aborted when the last caller has gone, so an upstream call never outlives all its callers. */
  readonly abort: AbortController;
  readonly promise: Promise<T>;
  waiters: number;
}

export class SingleFlight<T> {
  readonly options: SingleFlightOptions;
  /** Callers that were answered by a call another caller started. */
  shared = 0;
  /** Calls that a caller may still join; a flight leaves this map when sent (linearizable) or answered. */
  private readonly joinable = new Map<string, Flight<T>>();

  constructor(o: Partial<SingleFlightOptions> = {}) {
    this.options = { ...DEFAULT_SINGLE_FLIGHT, ...o };
  }

  /** Calls open for joining now (for tests and /metrics). */
  get open(): number {
    return this.joinable.size;
  }

  /**
   * The answer of `call`, possibly shared with other callers of the same key. `signal` is this caller's:
   * when it aborts, this caller gets its reason; the call goes on while others wait for it.
   */
  run(key: string, mode: ReadMode, iv: KeyInterval | undefined, signal: AbortSignal, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const id = (mode === "linearizable" ? "L" : "S") + key;
    let flight = this.joinable.get(id);
    if (flight && flight.waiters < this.options.maxWaiters && !flight.abort.signal.aborted) this.shared++;
    else flight = this.start(id, mode, iv, call);
    return this.wait(flight, signal);
  }

  /**
   * Keys in `iv` have changed: serializable calls already sent for them may carry the old value, so later
   * callers must not join them. Unsent linearizable calls stay joinable: they will see the change.
   */
  forget(iv: KeyInterval): void {
    for (const [id, f] of this.joinable) {
      if (id.startsWith("S") && (f.iv === undefined || overlaps(f.iv, iv))) this.joinable.delete(id);
    }
  }

  private start(id: string, mode: ReadMode, iv: KeyInterval | undefined, call: (signal: AbortSignal) => Promise<T>): Flight<T> {
    const abort = new AbortController();
    let settle!: { resolve: (v: T) => void; reject: (e: unknown) => void };
    const promise = new Promise<T>((resolve, reject) => { settle = { resolve, reject }; });
    // Every caller may have gone before the answer: the rejection must not count as unhandled.
    promise.catch(() => {});
    const flight: Flight<T> = { id, iv, abort, promise, waiters: 0 };
    this.joinable.set(id, flight);
    const send = () => {
      if (mode === "linearizable") this.close(flight);
      if (abort.signal.aborted) return settle.reject(abort.signal.reason);
      call(abort.signal).then(settle.resolve, settle.reject).finally(() => this.close(flight));
    };
    if (mode === "linearizable") this.options.schedule(send);
    else send();
    return flight;
  }

  private wait(flight: Flight<T>, signal: AbortSignal): Promise<T> {
    flight.waiters++;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        flight.waiters--;
        if (flight.waiters === 0) {
          this.close(flight);
          flight.abort.abort(signal.reason);
        }
        reject(signal.reason);
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      flight.promise.then(
        (v) => { signal.removeEventListener("abort", onAbort); resolve(v); },
        (e) => { signal.removeEventListener("abort", onAbort); reject(e); },
      );
    });
  }

  private close(flight: Flight<T>): void {
    if (this.joinable.get(flight.id) === flight) this.joinable.delete(flight.id);
  }
}
