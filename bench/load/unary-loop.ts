/**
 * The closed loop every unary workload runs: `concurrency` slots, each issuing its next call as soon as
 * the previous one finished. Calls run from `go` on; the ones that finish inside the window are counted,
 * the rest are warm-up or drain.
 */
import { performance } from "node:perf_hooks";
import type { GenResult, Window } from "./protocol.js";
import { Samples } from "./stats.js";

/** Issues one call for `slot` and reports its outcome (undefined = success). */
export type Caller = (slot: number, done: (error: string | undefined) => void) => void;

/** How long the loop waits for calls still in flight after the window before it gives up on them. */
const DRAIN_MS = 10_000;

const now = () => performance.timeOrigin + performance.now();

export function runLoop(call: Caller, concurrency: number, window: Window, firstSlot = 0): Promise<GenResult> {
  return new Promise((resolve) => {
    const latencies = new Samples();
    let units = 0;
    let errors = 0;
    let firstError: string | undefined;
    let inFlight = 0;
    let stopped = false;
    let cpuStart = process.cpuUsage();
    let cpuMs = 0;
    let drainTimer: ReturnType<typeof setTimeout> | undefined;
    let finished = false;
    setTimeout(() => { cpuStart = process.cpuUsage(); }, Math.max(0, window.startAt - Date.now()));
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(drainTimer);
      resolve({ units, errors, firstError, latenciesMs: latencies.toArray(), seconds: (window.endAt - window.startAt) / 1000, cpuMs, extra: { inFlightAtEnd: inFlight, samplesDropped: latencies.dropped } });
    };
    setTimeout(() => {
      const cpu = process.cpuUsage(cpuStart);
      cpuMs = (cpu.user + cpu.system) / 1000;
      stopped = true;
      if (inFlight === 0) finish();
      else drainTimer = setTimeout(finish, DRAIN_MS);
    }, Math.max(0, window.endAt - Date.now()));
    const issue = (slot: number) => {
      if (stopped) {
        if (inFlight === 0) finish();
        return;
      }
      inFlight++;
      const t0 = now();
      call(slot, (error) => {
        inFlight--;
        const t1 = now();
        if (t1 >= window.startAt && t1 <= window.endAt) {
          if (error === undefined) {
            units++;
            latencies.push(t1 - t0);
          } else {
            errors++;
            firstError ??= error;
          }
        }
        // A target that fails fast must not turn the loop into a busy spin: back off a little on errors.
        if (error !== undefined) setTimeout(() => issue(slot), 5);
        else issue(slot);
      });
    };
    for (let s = 0; s < concurrency; s++) issue(firstSlot + s);
  });
}
