/**
 * The generator's side of the IPC sequence in protocol.ts, as three awaits a workload calls in order:
 * ready() (set up, waiting for the orchestrator), sample() (hold still while it measures the target) and
 * end() (measured phase over; it samples, then lets the generator tear down).
 */
import type { FromGenerator, ToGenerator, Window } from "./protocol.js";

export interface Control {
  /** Set-up is done; resolves with the window (closed loops) once the orchestrator says go. */
  ready(): Promise<Window | undefined>;
  /** The orchestrator snapshots the target (RSS, etcd's watcher and stream counts) and resolves this. */
  sample(): Promise<void>;
  /** The measured phase is over; resolves when the orchestrator has taken its end samples. */
  end(): Promise<void>;
}

/** Resolves once the message is handed to the channel (a result must be out before the process exits). */
export function send(m: FromGenerator): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(m, undefined, {}, () => resolve());
  });
}

/** Messages from the orchestrator, kept until a workload asks for them (the sequence is strict). */
class Inbox {
  private readonly queue: ToGenerator[] = [];
  private waiter: ((m: ToGenerator) => void) | undefined;

  deliver(m: ToGenerator): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(m);
    } else {
      this.queue.push(m);
    }
  }

  async next<T extends ToGenerator["type"]>(type: T): Promise<Extract<ToGenerator, { type: T }>> {
    const m = this.queue.shift() ?? (await new Promise<ToGenerator>((r) => { this.waiter = r; }));
    if (m.type !== type) throw new Error(`generator expected "${type}" from the orchestrator, got "${m.type}"`);
    return m as Extract<ToGenerator, { type: T }>;
  }
}

export const inbox = new Inbox();

export const control: Control = {
  async ready() {
    await send({ type: "ready" });
    return (await inbox.next("go")).window;
  },
  async sample() {
    await send({ type: "sample" });
    await inbox.next("sampled");
  },
  async end() {
    await send({ type: "end" });
    await inbox.next("finish");
  },
};
