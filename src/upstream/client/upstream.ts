/**
 * upstream/client/: endpoints, failover, sessions, unary calls, etcd's errors. Imports: wire/, runtime/, observe/.
 *
 * The one way the proxy talks to etcd. Services hand it the caller's context; it picks an endpoint, copies
 * the metadata etcd reads, carries the caller's deadline and cancellation, and maps errors. Later layers
 * (watch and lease hubs, range cache, single-flight) sit on top of this class, never beside it.
 */
import type { CallOptions } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { callerMetadata, type CallerContext } from "../../wire/caller.js";
import { clampTimer } from "../../wire/timeout.js";
import { createEtcdClients, type EtcdClients, type UpstreamTls } from "./clients.js";
import type { Admission } from "./fairness.js";
import { fromUpstream, isUnreachable } from "./errors.js";
import { checkEndpoint, isLeaderChange, LIVENESS_TICK_MS, type CallInFlight, type Watched } from "./liveness.js";
import { namespacedClients } from "./namespaced-clients.js";

/** One etcd endpoint as the transport dials it. */
export interface Endpoint {
  /** "http://host:port" or "https://host:port". */
  url: string;
  tls: boolean;
}

export interface UpstreamOptions {
  endpoints: Endpoint[];
  tls: UpstreamTls | undefined;
  maxSendBytes: number;
  maxRecvBytes: number;
  keepAliveTimeMs: number;
  keepAliveTimeoutMs: number;
  /** How often an endpoint marked down is probed again. 2 s: fail back quickly, cost nothing. */
  probeIntervalMs?: number;
  /**
   * How often an endpoint is asked for its Status while calls or streams are open on it, and how long it
   * has to answer (liveness.ts). 1 s: a frozen etcd answers nothing and no connection error ever comes;
   * within about 1.5 s its calls and streams end Unavailable and new calls go to the next endpoint.
   */
  livenessIntervalMs?: number;
  /** --namespace: every key under this prefix, on every endpoint (namespaced-clients.ts); unset or empty: none. */
  namespace?: Uint8Array;
  admission?: Admission; // --fairness (fairness.ts): a unary call charged to a flow waits there for its seats
}

export interface HealthResult {
  ok: boolean;
  /** Empty when ok; else why, as etcd's proxy words it ("GET ERROR: ..."). */
  reason: string;
  /** The endpoint new calls go to now. */
  endpoint?: string;
  /** Endpoints marked down (unreachable or not answering), probed again every 2 s. */
  down?: string[];
}

/** An endpoint: what liveness.ts watches of it, and its clients. */
interface EndpointState extends Watched {
  readonly clients: EtcdClients & { close(): void };
}

export class Upstream {
  /**
   * The endpoints calls may go to, in order. Replaced as a whole by setEndpoints (never edited in place), so
   * a loop over an earlier list still sees a consistent one.
   */
  private list: readonly EndpointState[];
  /** Index of the endpoint new calls go to; moves on when that endpoint is unreachable. */
  private current = 0;
  /** Upstream streams (Watch, LeaseKeepAlive, Snapshot, Observe, ...) open now. */
  openStreams = 0;
  /** Times new calls moved to another endpoint because the one in use was found unreachable. */
  failovers = 0;
  /** The highest raft term any endpoint answered (liveness.ts): a call records it when sent. */
  private term = 0n;
  /** When `term` was last confirmed by a Status answer; a call sent long after records no term. */
  private termSeenAt = 0;
  private readonly probeTimer: ReturnType<typeof setInterval>;
  private readonly livenessTimer: ReturnType<typeof setInterval>;

  constructor(private readonly o: UpstreamOptions) {
    if (o.endpoints.length === 0) throw new Error("no etcd endpoint");
    this.list = o.endpoints.map((e) => this.open(e));
    this.probeTimer = setInterval(() => void this.probeDown(), o.probeIntervalMs ?? 2000);
    this.probeTimer.unref?.();
    this.livenessTimer = setInterval(() => this.checkLiveness(), LIVENESS_TICK_MS);
    this.livenessTimer.unref?.();
  }

  get endpoints(): readonly EndpointState[] {
    return this.list;
  }

  /**
   * Replaces the endpoint list (--endpoints-auto-sync-interval): endpoints kept keep their sessions and
   * state; new ones start as up; a removed one takes no new call, its unary calls in flight finish (its
   * session is closed gracefully), and its streams end now with Unavailable, so the watch and keep-alive
   * hubs re-attach on an endpoint of the new list. An empty list is ignored: no endpoint left to call.
   */
  setEndpoints(endpoints: readonly Endpoint[]): { added: string[]; removed: string[] } {
    const urls = [...new Set(endpoints.map((e) => e.url))];
    if (urls.length === 0) return { added: [], removed: [] };
    const currentUrl = this.list[this.current]?.url;
    const old = new Map(this.list.map((ep) => [ep.url, ep]));
    const added = urls.filter((u) => !old.has(u));
    const removed = this.list.filter((ep) => !urls.includes(ep.url));
    if (added.length === 0 && removed.length === 0 && urls.every((u, i) => this.list[i]?.url === u)) return { added: [], removed: [] };
    this.list = urls.map((url) => old.get(url) ?? this.open(endpoints.find((e) => e.url === url)!));
    this.current = Math.max(0, this.list.findIndex((ep) => ep.url === currentUrl));
    for (const ep of removed) {
      for (const stream of ep.streams) stream.abort(new ConnectError(`etcd endpoint ${ep.url} was removed from the endpoint list`, Code.Unavailable));
      ep.clients.close();
    }
    return { added, removed: removed.map((ep) => ep.url) };
  }

  private open(e: Endpoint): EndpointState {
    const o = this.o;
    const { tls, maxSendBytes, maxRecvBytes, keepAliveTimeMs, keepAliveTimeoutMs } = o;
    const clients = createEtcdClients({ url: e.url, tls, maxSendBytes, maxRecvBytes, keepAliveTimeMs, keepAliveTimeoutMs, keepAnswerBytes: !o.namespace?.length });
    return {
      url: e.url,
      up: true,
      streams: new Set(),
      calls: new Set(),
      leaderBound: new Set(),
      checking: false,
      checkedAt: 0,
      clients: o.namespace?.length ? namespacedClients(clients, o.namespace) : clients,
    };
  }

  /** Call options for an upstream call on behalf of `caller`: its metadata, deadline and cancellation. */
  callOptions(caller: CallerContext | undefined, signal?: AbortSignal): CallOptions {
    if (!caller) return signal ? { headers: new Headers(), signal } : { headers: new Headers() };
    const options: CallOptions = { headers: callerMetadata(caller.requestHeader) };
    const timeoutMs = caller.timeoutMs();
    if (timeoutMs !== undefined) options.timeoutMs = clampTimer(timeoutMs);
    options.signal = signal ?? caller.signal;
    return options;
  }

  /**
   * A unary call. `readOnly` calls are retried once on each other endpoint when the first is unreachable;
   * writes only when the connection was refused (the request never left the proxy), so no write is ever
   * applied twice. A call on an endpoint that stops answering (checkLiveness) ends Unavailable: retried
   * elsewhere if read-only, else its outcome is unknown and the client is told so.
   */
  async unary<T>(caller: CallerContext | undefined, call: (c: EtcdClients, opts: CallOptions) => Promise<T>, policy: { readOnly: boolean; admitted?: boolean }): Promise<T> {
    const waited = caller && !policy.admitted && this.o.admission?.run(caller, () => this.unary(caller, call, { ...policy, admitted: true }));
    if (waited) return waited;
    const opts = this.callOptions(caller);
    let lastErr: unknown;
    for (let attempt = 0; attempt < this.endpoints.length; attempt++) {
      const ep = this.pick();
      const abort = new AbortController();
      const onAbort = () => abort.abort(opts.signal?.reason);
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      if (opts.signal?.aborted) abort.abort(opts.signal.reason);
      const now = Date.now();
      const inFlight: CallInFlight = { abort, since: now, term: this.termIfCurrent(now) };
      ep.calls.add(inFlight);
      try {
        return await call(ep.clients, { ...opts, signal: abort.signal });
      } catch (err) {
        // Ended by checkLiveness: the abort's reason says why, whatever the transport made of it.
        const byLiveness = abort.signal.reason instanceof ConnectError && !opts.signal?.aborted;
        lastErr = byLiveness ? abort.signal.reason : err;
        if (!isUnreachable(lastErr) || caller?.signal.aborted) break;
        if (!isLeaderChange(lastErr)) this.markDown(ep);
        // Only the call's own connection error proves it never left; a call liveness ended was sent
        // (whatever the text of the Status failure that ended it).
        const neverSent = !byLiveness && /ECONNREFUSED|EHOSTUNREACH|ENOTFOUND/.test(ConnectError.from(err).rawMessage);
        if (!policy.readOnly && !neverSent) break;
      } finally {
        ep.calls.delete(inFlight);
        opts.signal?.removeEventListener("abort", onAbort);
      }
    }
    throw fromUpstream(lastErr);
  }

  /**
   * A streaming call, open for as long as the caller iterates. Ending the iteration early (the client went
   * away) aborts the upstream stream, so no upstream stream outlives its client. `leaderBound`: the stream
   * ends Unavailable when etcd's raft term moves past the one it began in (liveness.ts), for streams whose
   * requests a follower forwards to the leader and that stall when that leader is gone (LeaseKeepAlive).
   */
  async *stream<T>(caller: CallerContext | undefined, call: (c: EtcdClients, opts: CallOptions) => AsyncIterable<T>, o: { leaderBound?: boolean } = {}): AsyncGenerator<T> {
    const abort = new AbortController();
    const onAbort = () => abort.abort(caller?.signal.reason);
    caller?.signal.addEventListener("abort", onAbort, { once: true });
    const ep = this.pick();
    this.openStreams++;
    ep.streams.add(abort);
    const now = Date.now();
    const bound: CallInFlight = { abort, since: now, term: this.termIfCurrent(now) };
    if (o.leaderBound) ep.leaderBound.add(bound);
    try {
      yield* call(ep.clients, this.callOptions(caller, abort.signal));
    } catch (err) {
      // Taken out of the list (setEndpoints): the abort's reason says so, whatever the transport made of it.
      if (abort.signal.reason instanceof ConnectError && !caller?.signal.aborted) throw abort.signal.reason;
      if (isUnreachable(err)) this.markDown(ep);
      throw fromUpstream(err);
    } finally {
      ep.streams.delete(abort);
      ep.leaderBound.delete(bound);
      this.openStreams--;
      caller?.signal.removeEventListener("abort", onAbort);
      abort.abort();
    }
  }

  /** The endpoint for the next call: the current one if up, else the next one that is up, else current. */
  private pick(): EndpointState {
    this.current = this.firstUp();
    return this.list[this.current]!;
  }

  /** Index of the current endpoint if up, else of the next one that is up, else the current one. */
  private firstUp(): number {
    const n = this.list.length;
    for (let i = 0; i < n; i++) if (this.list[(this.current + i) % n]!.up) return (this.current + i) % n;
    return this.current;
  }

  private markDown(ep: EndpointState): void {
    if (!ep.up) return;
    ep.up = false;
    const idx = this.list.indexOf(ep);
    if (idx === -1) return; // already out of the list
    if (idx === this.current && this.list.some((e) => e.up)) this.failovers++;
    this.current = (idx + 1) % this.list.length;
  }

  /** Each endpoint in use is asked for its Status when due (liveness.ts). */
  private checkLiveness(): void {
    const intervalMs = this.o.livenessIntervalMs ?? 1000;
    for (const ep of this.list) {
      checkEndpoint(ep, intervalMs, (down, why) => {
        this.markDown(ep);
        for (const c of ep.calls) c.abort.abort(why);
        for (const a of ep.streams) a.abort(why);
      }, (term) => {
        if (term > this.term) this.term = term;
        this.termSeenAt = Date.now();
      });
    }
  }

  /** The known raft term if a Status confirmed it within the last check interval, else 0 (unknown). */
  private termIfCurrent(now: number): bigint {
    return now - this.termSeenAt <= 2 * (this.o.livenessIntervalMs ?? 1000) ? this.term : 0n;
  }

  private async probeDown(): Promise<void> {
    await Promise.all(this.endpoints.filter((e) => !e.up).map(async (ep) => {
      try {
        await ep.clients.maintenance.status({}, { timeoutMs: 1000 });
        ep.up = true;
      } catch {
        // still down; probed again next round
      }
    }));
  }

  /**
   * Is etcd answering? A linearizable count-only Range (it needs a leader), 1 s budget, like etcd's own
   * /health. An auth refusal still proves etcd answered through consensus, so it counts as healthy.
   */
  check(): Promise<HealthResult> {
    // Concurrent checks (/health, gRPC health probes, several load balancers) share one call to etcd.
    this.checking ??= this.checkOnce(1000).finally(() => { this.checking = undefined; });
    return this.checking;
  }

  private checking: Promise<HealthResult> | undefined;

  private async checkOnce(timeoutMs: number): Promise<HealthResult> {
    try {
      await this.unary(undefined, (c, opts) => c.kv.range({ key: new TextEncoder().encode("health"), countOnly: true }, { ...opts, timeoutMs }), { readOnly: true });
      return { ok: true, reason: "", ...this.where() };
    } catch (err) {
      const ce = ConnectError.from(err);
      const answered = ce.code === Code.PermissionDenied || ce.code === Code.Unauthenticated || ce.rawMessage === "etcdserver: user name is empty";
      return answered ? { ok: true, reason: "", ...this.where() } : { ok: false, reason: `GET ERROR: ${ce.rawMessage}`, ...this.where() };
    }
  }

  /** Which endpoint is in use and which are down, for /health. */
  private where(): { endpoint: string; down: string[] } {
    return { endpoint: this.list[this.firstUp()]?.url ?? "", down: this.list.filter((e) => !e.up).map((e) => e.url) };
  }

  close(): void {
    clearInterval(this.probeTimer);
    clearInterval(this.livenessTimer);
    for (const ep of this.list) ep.clients.close();
  }
}
