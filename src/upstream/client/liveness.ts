/**
 * Calls that hang: what no connection error ever reports. Two cases, both found by asking the endpoint for
 * its Status (maintenance.status, 1 s budget) while calls or streams are open on it:
 *
 * - A frozen etcd (SIGSTOP, a hung VM or disk) keeps its sockets open and answers nothing. No answer to
 *   Status within 1 s: the endpoint is down, its calls and streams end Unavailable now.
 * - A call that spans a leader change. A follower forwards a proposal to the leader it knows; if that
 *   leader is dead the proposal is dropped silently and etcd answers only at its request timeout (7 s).
 *   Status answers with a newer raft term than the call began in: the call ends Unavailable (a read is
 *   retried, a write's outcome is unknown and the client is told so; the proxy never sends it again).
 *   The same for a stream opened `leaderBound` (the keep-alive hub's): a follower renews a lease through
 *   the leader, one request at a time per stream, so one renewal stuck on a frozen leader stalls the stream
 *   for etcd's 7 s; ended, the hub re-sends its keep-alives on a new stream.
 *
 * Asked every second while calls or streams are open, and every 250 ms while a call has waited 250 ms.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { EtcdClients } from "./clients.js";
import { isUnreachable } from "./errors.js";

/** How often the endpoints are looked at; also how long a call waits before its endpoint is asked. */
export const LIVENESS_TICK_MS = 250;

/** One unary call in flight on an endpoint. */
export interface CallInFlight {
  readonly abort: AbortController;
  /** Date.now() when sent. */
  readonly since: number;
  /** The raft term known when sent, if it had been confirmed within the last check interval; else 0. */
  readonly term: bigint;
}

/**
 * The reasons calls spanning a leader change were ended: their endpoint is fine, it is not marked down.
 * A set, not a subclass: ConnectError's Symbol.hasInstance says yes to every ConnectError.
 */
const leaderChanges = new WeakSet<object>();

export function isLeaderChange(err: unknown): boolean {
  return typeof err === "object" && err !== null && leaderChanges.has(err);
}

export interface Watched {
  readonly url: string;
  readonly clients: EtcdClients;
  up: boolean;
  /** Calls in flight, oldest first (a Set keeps insertion order). */
  readonly calls: Set<CallInFlight>;
  readonly streams: Set<AbortController>;
  readonly leaderBound: Set<CallInFlight>;
  checking: boolean;
  /** Date.now() of the last Status asked. */
  checkedAt: number;
}

/**
 * Asks `ep` for its Status if it is due: calls or streams open and `intervalMs` since the last question,
 * or a call waiting LIVENESS_TICK_MS. `down` is told when it did not answer in time; `term` gets each answer's
 * raft term and returns the highest known.
 */
export function checkEndpoint(ep: Watched, intervalMs: number, down: (ep: Watched, why: ConnectError) => void, term: (t: bigint) => void): void {
  // A down endpoint is checked too while calls are on it (every endpoint down: pick() still sends there),
  // so a frozen etcd ends them Unavailable instead of leaving them to their deadlines.
  if (ep.checking) return;
  const now = Date.now();
  const oldest = ep.calls.values().next().value as CallInFlight | undefined;
  const slow = oldest !== undefined && now - oldest.since >= LIVENESS_TICK_MS;
  const due = (ep.calls.size > 0 || ep.streams.size > 0) && now - ep.checkedAt >= intervalMs;
  if (!slow && !due) return;
  ep.checking = true;
  ep.checkedAt = now;
  ep.clients.maintenance.status({}, { timeoutMs: intervalMs }).then((s) => {
    term(s.raftTerm);
    for (const c of [...ep.calls, ...ep.leaderBound]) {
      // Only a call that has waited a tick, sent while its term was known to be current (liveness.ts
      // records 0 otherwise): a call sent after the election, or a fast one, is left alone.
      if (now - c.since < LIVENESS_TICK_MS || c.term === 0n || c.term >= s.raftTerm) continue;
      const why = new ConnectError(`etcd's leader changed (raft term ${c.term} → ${s.raftTerm}) while the call was in flight; its outcome is unknown`, Code.Unavailable);
      leaderChanges.add(why);
      c.abort.abort(why);
    }
  }, (err: unknown) => {
    const ce = ConnectError.from(err);
    if (ce.code !== Code.DeadlineExceeded && !isUnreachable(ce)) return; // etcd answered, with an error
    down(ep, new ConnectError(`etcd endpoint ${ep.url} did not answer within ${intervalMs} ms: ${ce.rawMessage}`, Code.Unavailable));
  }).finally(() => { ep.checking = false; });
}
