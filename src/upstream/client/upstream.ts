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
import { fromUpstream, isUnreachable } from "./errors.js";

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
}

export interface HealthResult {
  ok: boolean;
  /** Empty when ok; else why, as etcd's proxy words it ("GET ERROR: ..."). */
  reason: string;
}

interface EndpointState {
  url: string;
  clients: EtcdClients & { close(): void };
  /** false after a call found it unreachable, until a probe succeeds. */
  up: boolean;
}

export class Upstream {
  readonly endpoints: EndpointState[];
  /** Index of the endpoint new calls go to; moves on when that endpoint is unreachable. */
  private current = 0;
  /** Upstream streams (Watch, LeaseKeepAlive, Snapshot, Observe, ...) open now. */
  openStreams = 0;
  private readonly probeTimer: ReturnType<typeof setInterval>;

  constructor(private readonly o: UpstreamOptions) {
    this.endpoints = o.endpoints.map((e) => ({
      url: e.url,
      up: true,
      clients: createEtcdClients({ url: e.url, tls: o.tls, maxSendBytes: o.maxSendBytes, maxRecvBytes: o.maxRecvBytes, keepAliveTimeMs: o.keepAliveTimeMs, keepAliveTimeoutMs: o.keepAliveTimeoutMs }),
    }));
    this.probeTimer = setInterval(() => void this.probeDown(), o.probeIntervalMs ?? 2000);
    this.probeTimer.unref?.();
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
   * applied twice.
   */
  async unary<T>(caller: CallerContext | undefined, call: (c: EtcdClients, opts: CallOptions) => Promise<T>, policy: { readOnly: boolean }): Promise<T> {
    const opts = this.callOptions(caller);
    let lastErr: unknown;
    for (let attempt = 0; attempt < this.endpoints.length; attempt++) {
      const ep = this.pick();
      try {
        return await call(ep.clients, opts);
      } catch (err) {
        lastErr = err;
        if (!isUnreachable(err) || caller?.signal.aborted) break;
        this.markDown(ep);
        const neverSent = /ECONNREFUSED|EHOSTUNREACH|ENOTFOUND/.test(ConnectError.from(err).rawMessage);
        if (!policy.readOnly && !neverSent) break;
      }
    }
    throw fromUpstream(lastErr);
  }

  /**
   * A streaming call, open for as long as the caller iterates. Ending the iteration early (the client went
   * away) aborts the upstream stream, so no upstream stream outlives its client.
   */
  async *stream<T>(caller: CallerContext | undefined, call: (c: EtcdClients, opts: CallOptions) => AsyncIterable<T>): AsyncGenerator<T> {
    const abort = new AbortController();
    const onAbort = () => abort.abort(caller?.signal.reason);
    caller?.signal.addEventListener("abort", onAbort, { once: true });
    const ep = this.pick();
    this.openStreams++;
    try {
      yield* call(ep.clients, this.callOptions(caller, abort.signal));
    } catch (err) {
      if (isUnreachable(err)) this.markDown(ep);
      throw fromUpstream(err);
    } finally {
      this.openStreams--;
      caller?.signal.removeEventListener("abort", onAbort);
      abort.abort();
    }
  }

  /** The endpoint for the next call: the current one if up, else the next one that is up, else current. */
  private pick(): EndpointState {
    for (let i = 0; i < this.endpoints.length; i++) {
      const idx = (this.current + i) % this.endpoints.length;
      if (this.endpoints[idx]!.up) {
        this.current = idx;
        return this.endpoints[idx]!;
      }
    }
    return this.endpoints[this.current]!;
  }

  private markDown(ep: EndpointState): void {
    ep.up = false;
    this.current = (this.endpoints.indexOf(ep) + 1) % this.endpoints.length;
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
      await this.unary(undefined, (c) => c.kv.range({ key: new TextEncoder().encode("health"), countOnly: true }, { timeoutMs }), { readOnly: true });
      return { ok: true, reason: "" };
    } catch (err) {
      const ce = ConnectError.from(err);
      const answered = ce.code === Code.PermissionDenied || ce.code === Code.Unauthenticated || ce.rawMessage === "etcdserver: user name is empty";
      return answered ? { ok: true, reason: "" } : { ok: false, reason: `GET ERROR: ${ce.rawMessage}` };
    }
  }

  close(): void {
    clearInterval(this.probeTimer);
    for (const ep of this.endpoints) ep.clients.close();
  }
}
