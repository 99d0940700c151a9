/**
 * A unary request whose body stops arriving before its end: without a deadline (grpc-timeout, Connect's
 * timeout header) nothing would ever end the call, and its HTTP/2 stream and buffers would be held for
 * as long as the connection lives. After BODY_IDLE_MS without a byte the call fails DeadlineExceeded,
 * naming the bound.
 *
 * One interval for every call in flight, not a timer each: this is the hottest path, and a request
 * body normally ends in the same I/O turn it began. The interval runs only while calls wait for a body.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** 30 s: far above any client's pause between the frames of one request, short enough to free a stuck stream. */
export const BODY_IDLE_MS = 30_000;
/** Granularity of the check: a stuck body is failed between BODY_IDLE_MS and BODY_IDLE_MS + 1 s. */
const SWEEP_MS = 1_000;

export interface PendingBody {
  /** Date.now() of the last byte. */
  last: number;
  readonly fail: (err: ConnectError) => void;
}

const pending = new Set<PendingBody>();
let sweeper: ReturnType<typeof setInterval> | undefined;

export function awaitBody(fail: (err: ConnectError) => void): PendingBody {
  const p: PendingBody = { last: Date.now(), fail };
  pending.add(p);
  if (!sweeper) {
    sweeper = setInterval(sweep, SWEEP_MS);
    (sweeper as { unref?: () => void }).unref?.();
  }
  return p;
}

export function bodyDone(p: PendingBody): void {
  pending.delete(p);
}

function sweep(): void {
  const now = Date.now();
  for (const p of pending) {
    if (now - p.last < BODY_IDLE_MS) continue;
    pending.delete(p);
    p.fail(new ConnectError(`request body incomplete: nothing received for ${BODY_IDLE_MS / 1000} s`, Code.DeadlineExceeded));
  }
  if (pending.size === 0) {
    clearInterval(sweeper);
    sweeper = undefined;
  }
}
