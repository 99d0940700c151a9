/**
 * --fairness: etcd's capacity shared between callers, as Kubernetes' API Priority and Fairness shares an
 * API server's (KEP-1040), with one priority level. Each call is charged to a flow (wire/flow.ts: the
 * client's certificate, etcd user or address) and costs seats; at most `seats` are in use toward etcd at
 * once. A call that cannot start at once waits in one of its flow's queues: the flow is dealt a hand of
 * `handSize` of the `queues` queues by a hash of its name (shuffle sharding) and joins the shortest, so
 * a heavy flow fills only its own hand and another flow shares all of its queues with it only by rare
 * chance (128 queues, hands of 6: about 1 in 5 billion). Freed seats go to the waiting queue whose
 * flow holds the fewest seats now, then of those to the one served the fewest seats so far (start-time
 * fair queuing in seats), so a quiet flow's call goes before a heavy flow's next one. One flow holds at
 * most `flowSeats` at once: a heavy caller alone never takes every seat, so another caller's call
 * starts without waiting for one of the heavy caller's calls to end.
 *
 * Nothing waits without a bound: a full queue refuses at once and a call waits `maxWaitMs` at most,
 * both ResourceExhausted with a message naming the limit and `retry-after` metadata (the gateway's
 * Retry-After). Applied in Upstream.unary, where a call is about to go to etcd: a cache hit never gets
 * here (it costs etcd nothing) and neither do streams (watches and lease keep-alives are shared upstream).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { chargeOf } from "../../wire/flow.js";
import type { CallerContext } from "../../wire/caller.js";

export interface FairnessOptions {
  /** Seats in use toward etcd at most (--fairness-seats). */
  seats: number;
  /** Seats one flow holds at most (--fairness-flow-seats). */
  flowSeats: number;
  /** Queues in all, and queues dealt to each flow (--fairness-queues, --fairness-hand-size). */
  queues: number;
  handSize: number;
  /** Calls one queue holds (--fairness-queue-length). */
  queueLength: number;
  /** The longest a call waits for its seats (--fairness-max-wait). */
  maxWaitMs: number;
}

/** One flow's state; dropped when idle and the table is at its bound (stats then count as "other"). */
export interface Flow {
  readonly name: string;
  readonly hand: readonly number[];
  inUse: number;
  queued: number;
  rejected: number;
  /** Seats admitted, halved at each metrics read: what ranks the flows /metrics shows. */
  cost: number;
}

interface Waiter {
  flow: Flow;
  seats: number;
  go: () => void;
  fail: (err: ConnectError) => void;
}

interface Queue {
  readonly waiters: Waiter[];
  /** Seats dispatched from this queue, in the scheduler's virtual time. */
  served: number;
}

/** Flows remembered at most; beyond, idle ones are forgotten (their rejections move to `otherRejected`). */
const MAX_FLOWS = 4096;

export class Admission {
  inUse = 0;
  waiting = 0;
  /** Rejections of flows no longer in the table. */
  otherRejected = 0;
  readonly flows = new Map<string, Flow>();
  private readonly queues: Queue[];
  /** The virtual time: the `served` of the queue dispatched last; a queue that wakes up starts here. */
  private now = 0;

  constructor(readonly o: FairnessOptions) {
    this.queues = Array.from({ length: o.queues }, () => ({ waiters: [], served: 0 }));
  }

  /**
   * `send` once the call has its seats, or undefined when the call is not charged (exempt: the caller runs
   * it as is). Rejects ResourceExhausted when it does not fit; its caller's cancellation ends the wait.
   */
  run<T>(caller: CallerContext, send: () => Promise<T>): Promise<T> | undefined {
    const charge = chargeOf(caller.requestHeader);
    if (!charge) return undefined;
    const flow = this.flow(charge.flow);
    const seats = Math.max(1, Math.min(charge.seats, this.o.seats, this.o.flowSeats));
    const start = () => {
      let p: Promise<T>;
      try {
        p = send();
      } catch (err) {
        p = Promise.reject(err);
      }
      return p.then((res) => { charge.answered?.(res); return res; }).finally(() => this.release(flow, seats));
    };
    const q = this.shortest(flow);
    if (this.waiting === 0 && this.fits(flow, seats)) {
      q.served = Math.max(q.served, this.now) + seats;
      this.take(flow, seats);
      return start();
    }
    if (q.waiters.length >= this.o.queueLength) {
      flow.rejected++;
      return Promise.reject(exhausted(`etcd-edge: too many requests: flow "${flow.name}" has its queues full (--fairness-queue-length=${this.o.queueLength})`));
    }
    return this.wait(caller.signal, flow, seats, q).then(start);
  }

  private wait(signal: AbortSignal, flow: Flow, seats: number, q: Queue): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const end = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
      };
      const leave = (err: unknown) => {
        const i = q.waiters.indexOf(w);
        if (i === -1) return;
        q.waiters.splice(i, 1);
        this.waiting--;
        flow.queued--;
        end();
        reject(err);
        this.dispatch(); // the head of this queue may have been what held the others back
      };
      const onAbort = () => leave(signal.reason);
      const w: Waiter = { flow, seats, go: () => { end(); resolve(); }, fail: leave };
      const timer = setTimeout(() => {
        flow.rejected++;
        leave(exhausted(`etcd-edge: too many requests: no seat toward etcd within --fairness-max-wait=${this.o.maxWaitMs}ms (--fairness-seats=${this.o.seats} in use)`));
      }, this.o.maxWaitMs);
      if (q.waiters.length === 0) q.served = Math.max(q.served, this.now);
      q.waiters.push(w);
      this.waiting++;
      flow.queued++;
      signal.addEventListener("abort", onAbort, { once: true });
      this.dispatch();
    });
  }

  /** Gives freed seats to waiting calls, fairest queue first. */
  private dispatch(): void {
    while (this.waiting > 0) {
      let best: Queue | undefined;
      for (const q of this.queues) {
        const head = q.waiters[0];
        // A queue whose head's flow holds its share already waits for that flow's own calls to end.
        if (!head || head.flow.inUse + head.seats > this.o.flowSeats) continue;
        const bestFlow = best?.waiters[0]!.flow;
        if (!best || head.flow.inUse < bestFlow!.inUse || (head.flow.inUse === bestFlow!.inUse && q.served < best.served)) best = q;
      }
      // The fairest call waits for enough seats (a large call is not overtaken for ever by small ones).
      if (!best || this.inUse + best.waiters[0]!.seats > this.o.seats) return;
      const w = best.waiters.shift()!;
      this.waiting--;
      w.flow.queued--;
      this.now = best.served;
      best.served += w.seats;
      this.take(w.flow, w.seats);
      w.go();
    }
  }

  private fits(flow: Flow, seats: number): boolean {
    return this.inUse + seats <= this.o.seats && flow.inUse + seats <= this.o.flowSeats;
  }

  private take(flow: Flow, seats: number): void {
    this.inUse += seats;
    flow.inUse += seats;
    flow.cost += seats;
  }

  private release(flow: Flow, seats: number): void {
    this.inUse -= seats;
    flow.inUse -= seats;
    this.dispatch();
  }

  /** The shortest queue of the flow's hand (of equals, the one served least). */
  private shortest(flow: Flow): Queue {
    let best = this.queues[flow.hand[0]!]!;
    for (const i of flow.hand) {
      const q = this.queues[i]!;
      if (q.waiters.length < best.waiters.length || (q.waiters.length === best.waiters.length && q.served < best.served)) best = q;
    }
    return best;
  }

  private flow(name: string): Flow {
    let f = this.flows.get(name);
    if (f) return f;
    if (this.flows.size >= MAX_FLOWS) this.forgetIdle();
    f = { name, hand: deal(name, this.o.queues, this.o.handSize), inUse: 0, queued: 0, rejected: 0, cost: 0 };
    this.flows.set(name, f);
    return f;
  }

  private forgetIdle(): void {
    for (const [name, f] of this.flows) {
      if (f.inUse > 0 || f.queued > 0) continue;
      this.otherRejected += f.rejected;
      this.flows.delete(name);
    }
  }
}

/** ResourceExhausted, retry in a second (metadata `retry-after`, the gateway's Retry-After header). */
function exhausted(message: string): ConnectError {
  return new ConnectError(message, Code.ResourceExhausted, new Headers({ "retry-after": "1" }));
}

/** `handSize` distinct queue indices out of `queues`, the same for the same name (shuffle sharding). */
export function deal(name: string, queues: number, handSize: number): number[] {
  let seed = 0x811c9dc5; // FNV-1a of the name seeds a small PRNG (mulberry32) that deals the hand
  for (let i = 0; i < name.length; i++) seed = Math.imul(seed ^ name.charCodeAt(i), 0x01000193);
  const next = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const hand: number[] = [];
  const n = Math.min(handSize, queues);
  while (hand.length < n) {
    const i = Math.floor(next() * queues);
    if (!hand.includes(i)) hand.push(i);
  }
  return hand;
}
