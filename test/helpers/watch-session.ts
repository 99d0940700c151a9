/**
 * A client Watch stream driven by a test: requests pushed by hand, every response kept in order, and
 * bounded waits on what has arrived. Also etcd's and the proxy's /metrics read as numbers.
 */
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  WatchRequestSchema,
  type Watch,
  type WatchCreateRequest,
  type WatchRequest,
  type WatchResponse,
} from "../../gen/etcdserverpb/rpc_pb.js";
import { waitFor } from "./ports.js";
import { AsyncQueue } from "./streams.js";

export type CreateInit = Partial<Omit<WatchCreateRequest, "$typeName" | "$unknown">>;

export class WatchSession {
  readonly received: WatchResponse[] = [];
  error: unknown;
  ended = false;
  private readonly requests = new AsyncQueue<WatchRequest>();
  private readonly abort = new AbortController();
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  /** `paused`: the test does not read responses until `resume()` (a slow consumer). */
  constructor(client: Client<typeof Watch>, o: { headers?: Record<string, string>; paused?: boolean } = {}) {
    if (o.paused) this.pause();
    const it = client.watch(this.requests, { signal: this.abort.signal, headers: o.headers })[Symbol.asyncIterator]();
    void (async () => {
      try {
        for (;;) {
          if (this.gate) await this.gate;
          const r = await it.next();
          if (r.done) break;
          this.received.push(r.value);
        }
      } catch (err) {
        this.error = err;
      } finally {
        this.ended = true;
      }
    })();
  }

  send(req: WatchRequest["requestUnion"]): void {
    this.requests.push(create(WatchRequestSchema, { requestUnion: req }));
  }

  create(value: CreateInit): void {
    this.send({ case: "createRequest", value: value as WatchCreateRequest });
  }

  cancel(watchId: bigint): void {
    this.send({ case: "cancelRequest", value: { watchId } as never });
  }

  progress(): void {
    this.send({ case: "progressRequest", value: {} as never });
  }

  /** Creates and waits for the answer to this create (created, or created+canceled). */
  async createAndWait(value: CreateInit, what = "created"): Promise<WatchResponse> {
    const before = this.received.filter((r) => r.created).length;
    this.create(value);
    await this.until(what, () => this.received.filter((r) => r.created).length > before);
    return this.received.filter((r) => r.created)[before]!;
  }

  /** Half-close: no more requests; the watches must keep running. */
  end(): void {
    this.requests.end();
  }

  /** The client goes away (RST_STREAM). */
  close(): void {
    this.abort.abort();
    this.requests.end();
  }

  pause(): void {
    this.gate ??= new Promise((r) => { this.openGate = r; });
  }

  resume(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  async until(what: string, check: () => boolean, ms = 15_000): Promise<void> {
    await waitFor(what, () => {
      if (check()) return true;
      if (this.ended) throw new Error(`stream ended (${String(this.error)})`);
      return false;
    }, ms);
  }

  /** Responses for one watch id, in order. */
  of(watchId: bigint): WatchResponse[] {
    return this.received.filter((r) => r.watchId === watchId);
  }

  /** Events for one watch id, flattened across responses. */
  events(watchId: bigint) {
    return this.of(watchId).flatMap((r) => r.events);
  }
}

/** One sample from a Prometheus text page (first series with that name), or undefined. */
export async function metric(baseUrl: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}

/** etcd's own count of watchers it is serving (mvcc). */
export async function etcdWatchers(etcdUrl: string): Promise<number> {
  const n = await metric(etcdUrl, "etcd_debugging_mvcc_watcher_total");
  if (n === undefined) throw new Error("etcd_debugging_mvcc_watcher_total missing from etcd's /metrics");
  return n;
}

/**
 * etcd's watcher count once it has stopped moving (the same reading three times, 100 ms apart): the
 * baseline for a test on an etcd that earlier tests used, whose cancelled watches etcd may still be
 * dropping. A baseline read mid-drain made "before + 1" checks flaky in CI.
 */
export async function settledEtcdWatchers(etcdUrl: string, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = await etcdWatchers(etcdUrl);
  let same = 1;
  while (same < 3) {
    if (Date.now() > deadline) throw new Error(`etcd's watcher count did not settle within ${timeoutMs} ms (last ${last})`);
    await new Promise((r) => setTimeout(r, 100));
    const n = await etcdWatchers(etcdUrl);
    same = n === last ? same + 1 : 1;
    last = n;
  }
  return last;
}
