/**
 * upstream/lease/: the keep-alive hub. Imports: upstream/client/, wire/, runtime/, observe/.
 *
 * Lease keep-alive N→1: every client LeaseKeepAlive stream shares ONE upstream LeaseKeepAlive stream.
 *
 * - Each client keep-alive is forwarded; etcd's reply goes back to every client stream that asked for that
 *   lease. A keep-alive for a lease that already has one in flight is not sent again: the reply to the one
 *   in flight answers it (etcd renews on receipt, so that reply is at most one round trip older).
 * - Replies come when etcd answers, and nothing is sent that no client asked for: the proxy has no
 *   schedule of its own, so a lease lives exactly TTL after its client's last keep-alive (etcd's proxy
 *   keeps renewing on its own timer, about 2x TTL: #13031). Unknown or revoked leases get etcd's own
 *   answer, TTL 0 (etcd's proxy says -1).
 * - LeaseKeepAlive needs no credentials in etcd (v3rpc/lease.go renews by ID only), so sharing one
 *   tokenless stream between users shows nobody anything.
 * - The upstream stream opens on the first keep-alive and is half-closed once no client stream is left.
 *   If it breaks, the keep-alives in flight are sent again on a new stream (renewing twice is harmless).
 *   It also ends when etcd's leader changes (Upstream.stream's leaderBound), so a renewal stuck on a
 *   leader that is gone is sent again at once.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { LeaseKeepAliveRequestSchema, type LeaseKeepAliveRequest, type LeaseKeepAliveResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import { fromUpstream } from "../client/errors.js";
import { PushQueue } from "../client/push-queue.js";
import type { CallerContext } from "../../wire/caller.js";
import type { Upstream } from "../client/upstream.js";
import { pause } from "../client/pause.js";
import { canceled } from "../../wire/errors.js";

export interface LeaseHubOptions {
  /**
   * Keep-alives one client stream may have unanswered (asked, reply not yet written to it). 1024: clientv3
   * sends one per lease every TTL/3, so this is 1024 leases on one stream asked at once. Beyond it, that
   * client stream ends with ResourceExhausted; other streams are untouched.
   */
  maxPendingPerStream: number;
  /** All unanswered keep-alives of all client streams. 100,000; beyond it the asking stream ends ResourceExhausted. */
  maxWaiters: number;
  /**
   * Upstream streams that may break in a row, without any reply in between, before the waiting clients
   * get the error. 5, with a backoff from 100 ms doubling: a failover or restart has about 3 s to heal.
   */
  maxResends: number;
  resendBackoffMs: number;
}

export const DEFAULT_LEASE_HUB: LeaseHubOptions = { maxPendingPerStream: 1024, maxWaiters: 100_000, maxResends: 5, resendBackoffMs: 100 };

/** One client LeaseKeepAlive stream. Owned by its `serve` call; the hub only appends replies to `replies`. */
class KeepAliveClient {
  readonly replies: LeaseKeepAliveResponse[] = [];
  /** Asked and not yet written back to the client (in flight + in `replies`). */
  pending = 0;
  /** Lease ID → how many of this stream's keep-alives for it are in flight. */
  readonly asked = new Map<bigint, number>();
  halfClosed = false;
  gone = false;
  failure: ConnectError | undefined;
  private wakeUp: (() => void) | undefined;

  wake(): void {
    this.wakeUp?.();
    this.wakeUp = undefined;
  }

  changed(): Promise<void> {
    return new Promise((resolve) => { this.wakeUp = resolve; });
  }

  fail(err: ConnectError): void {
    this.failure ??= err;
    this.wake();
  }
}

export class LeaseHub {
  readonly options: LeaseHubOptions;
  clientStreams = 0;
  /** 0 or 1. */
  upstreamStreams = 0;
  /** Lease ID → the client streams waiting for its reply, one element per keep-alive asked. */
  private readonly inFlight = new Map<bigint, KeepAliveClient[]>();
  private waiters = 0;
  /** The upstream stream's request side while one is open (or being reopened). */
  private feed: PushQueue<LeaseKeepAliveRequest> | undefined;
  private running = false;
  private readonly stopped = new AbortController();

  constructor(private readonly up: Upstream, o: Partial<LeaseHubOptions> = {}) {
    this.options = { ...DEFAULT_LEASE_HUB, ...o };
  }

  /** Keep-alives asked and not yet answered by etcd, over all client streams (bounded by maxWaiters). */
  get waiting(): number {
    return this.waiters;
  }

  /** Serves one client LeaseKeepAlive stream; replies in the order etcd gives them. */
  async *serve(requests: AsyncIterable<LeaseKeepAliveRequest>, signal: AbortSignal): AsyncGenerator<LeaseKeepAliveResponse> {
    for await (const batch of this.serveBatches(requests, signal)) yield* batch;
  }

  /**
   * The same, with every reply queued for the stream at once in one batch: the native-gRPC fast path
   * (services/lease.ts) writes a batch as one HTTP/2 write. A batch holds at most maxPendingPerStream.
   */
  async *serveBatches(requests: AsyncIterable<LeaseKeepAliveRequest>, signal: AbortSignal): AsyncGenerator<LeaseKeepAliveResponse[]> {
    const client = new KeepAliveClient();
    this.clientStreams++;
    const onAbort = () => client.wake();
    signal.addEventListener("abort", onAbort, { once: true });
    void this.readRequests(requests, client);
    try {
      for (;;) {
        if (client.replies.length > 0) {
          const batch = client.replies.splice(0);
          client.pending -= batch.length;
          yield batch;
          continue;
        }
        if (client.failure) throw client.failure;
        if (signal.aborted) return;
        // Half-closed: answer what was asked, then end OK, as etcd does (etcd's proxy drops them).
        if (client.halfClosed && client.pending === 0) return;
        await client.changed();
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.clientStreams--;
      this.forget(client);
      this.closeIfIdle();
    }
  }

  /**
   * One keep-alive through the shared stream, for one-shot callers (the Edge service, the JSON gateway):
   * etcd's reply, or DeadlineExceeded after `timeoutMs` (the caller's deadline if shorter).
   */
  async keepAliveOnce(caller: CallerContext, req: LeaseKeepAliveRequest, timeoutMs = 5000): Promise<LeaseKeepAliveResponse> {
    const limit = Math.min(caller.timeoutMs() ?? timeoutMs, timeoutMs);
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), Math.max(1, limit));
    const signal = AbortSignal.any([caller.signal, deadline.signal]);
    try {
      // The single request half-closes the stream: serve answers it, then ends.
      for await (const res of this.serve(oneRequest(req), signal)) return res;
    } finally {
      clearTimeout(timer);
    }
    if (deadline.signal.aborted) throw new ConnectError("etcd did not answer the keep-alive in time", Code.DeadlineExceeded);
    if (caller.signal.aborted) throw canceled();
    throw new ConnectError("etcd ended the keep-alive stream without an answer", Code.Unavailable);
  }

  close(): void {
    this.stopped.abort();
    this.feed?.close();
  }

  private async readRequests(requests: AsyncIterable<LeaseKeepAliveRequest>, client: KeepAliveClient): Promise<void> {
    try {
      for await (const req of requests) {
        if (client.gone) return;
        const refused = this.ask(client, req.ID);
        if (refused) return client.fail(refused);
      }
      client.halfClosed = true;
      client.wake();
    } catch (err) {
      client.fail(fromUpstream(err));
    }
  }

  /** Registers one keep-alive of `client` for lease `id`; an error when a bound is reached. */
  private ask(client: KeepAliveClient, id: bigint): ConnectError | undefined {
    if (client.pending >= this.options.maxPendingPerStream) {
      return new ConnectError(`etcd-edge: more than ${this.options.maxPendingPerStream} keep-alives unanswered on this stream`, Code.ResourceExhausted);
    }
    if (this.waiters >= this.options.maxWaiters) {
      return new ConnectError(`etcd-edge: more than ${this.options.maxWaiters} keep-alives unanswered on this proxy`, Code.ResourceExhausted);
    }
    client.pending++;
    client.asked.set(id, (client.asked.get(id) ?? 0) + 1);
    this.waiters++;
    const waiting = this.inFlight.get(id);
    if (waiting) {
      waiting.push(client);
      return undefined;
    }
    this.inFlight.set(id, [client]);
    this.send(id);
    return undefined;
  }

  private send(id: bigint): void {
    if (!this.running) return void this.run();
    // While reopening (no feed, or a closed one) the request is sent with the rest of the in-flight ones.
    this.feed?.push(create(LeaseKeepAliveRequestSchema, { ID: id }));
  }

  /** etcd's reply: to every stream waiting for that lease, once per keep-alive it asked. */
  private deliver(res: LeaseKeepAliveResponse): void {
    const waiting = this.inFlight.get(res.ID);
    if (!waiting) return; // every asker has gone
    this.inFlight.delete(res.ID);
    for (const client of waiting) {
      this.waiters--;
      const n = (client.asked.get(res.ID) ?? 1) - 1;
      if (n > 0) client.asked.set(res.ID, n);
      else client.asked.delete(res.ID);
      client.replies.push(res);
      client.wake();
    }
  }

  /** The client stream ended: its waiters are dropped; replies for them are discarded. */
  private forget(client: KeepAliveClient): void {
    client.gone = true;
    for (const id of client.asked.keys()) {
      const waiting = this.inFlight.get(id);
      if (!waiting) continue;
      const left = waiting.filter((c) => c !== client);
      this.waiters -= waiting.length - left.length;
      // The request stays in flight upstream (it cannot be recalled); its reply finds no waiter.
      this.inFlight.set(id, left);
    }
    client.asked.clear();
  }

  private closeIfIdle(): void {
    if (this.clientStreams > 0) return;
    // Nobody left to answer: half-close, etcd ends the stream OK, and the next client opens a new one.
    this.feed?.close();
  }

  /**
   * Keeps one upstream stream open while keep-alives are in flight. After a break the ones in flight are
   * sent again on a new stream; if nothing is in flight, the next keep-alive opens it.
   */
  private async run(): Promise<void> {
    this.running = true;
    let failures = 0;
    try {
      while (this.inFlight.size > 0 && !this.stopped.signal.aborted) {
        const feed = new PushQueue<LeaseKeepAliveRequest>(this.options.maxWaiters + 1);
        this.feed = feed;
        for (const id of this.inFlight.keys()) feed.push(create(LeaseKeepAliveRequestSchema, { ID: id }));
        const caller: CallerContext = { requestHeader: new Headers(), signal: this.stopped.signal, timeoutMs: () => undefined };
        let err: ConnectError | undefined;
        this.upstreamStreams = 1;
        try {
          for await (const res of this.up.stream(caller, (c, o) => c.lease.leaseKeepAlive(feed, o), { leaderBound: true })) {
            failures = 0;
            this.deliver(res);
          }
          // An OK end we did not ask for (no half-close from us) is a break like any other.
          if (!feed.isClosed) err = new ConnectError("etcd ended the keep-alive stream", Code.Unavailable);
        } catch (e) {
          err = fromUpstream(e);
        } finally {
          this.upstreamStreams = 0;
          this.feed = undefined;
        }
        this.dropUnwanted();
        if (!err || this.inFlight.size === 0) continue;
        if (++failures > this.options.maxResends) return this.failAll(err);
        await pause(this.options.resendBackoffMs * 2 ** (failures - 1), this.stopped.signal);
      }
    } finally {
      this.running = false;
    }
  }

  /** In-flight keep-alives whose askers have all gone need no resend. */
  private dropUnwanted(): void {
    for (const [id, waiting] of this.inFlight) if (waiting.length === 0) this.inFlight.delete(id);
  }

  private failAll(err: ConnectError): void {
    for (const waiting of this.inFlight.values()) for (const client of waiting) client.fail(err);
    this.inFlight.clear();
    this.waiters = 0;
  }
}

async function* oneRequest(req: LeaseKeepAliveRequest): AsyncGenerator<LeaseKeepAliveRequest> {
  yield req;
}

