/**
 * The generator's HTTP/2 connections to one URL. A connection the server closes (GOAWAY: Node's HTTP/2
 * server sends one after about 2,000 streams cancelled by the client in a burst, nghttp2's rapid-reset
 * guard) is replaced on next use and counted, as a client library would reconnect.
 */
import * as http2 from "node:http2";
import { openSession } from "./grpc-raw.js";

const MAX_SESSION_MEMORY_MB = 256;

export class SessionPool {
  /** Connections opened again after the server closed or reset them. */
  reconnects = 0;
  private constructor(private readonly url: string, private readonly sessions: http2.ClientHttp2Session[]) {}

  static async open(url: string, count: number): Promise<SessionPool> {
    const settled = await Promise.allSettled(Array.from({ length: count }, () => openSession(url)));
    const sessions = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed) {
      for (const s of sessions) s.destroy();
      throw new Error(`could not open ${count} connections to ${url}: ${String(failed.reason)}`);
    }
    return new SessionPool(url, sessions);
  }

  get size(): number {
    return this.sessions.length;
  }

  /** Connection `i % size`, reopened first if the server has closed it. */
  get(i: number): http2.ClientHttp2Session {
    const at = i % this.sessions.length;
    const s = this.sessions[at]!;
    if (!s.closed && !s.destroyed) return s;
    this.reconnects++;
    // Requests on a session still connecting are queued by Node until it is up.
    const fresh = http2.connect(this.url, { maxSessionMemory: MAX_SESSION_MEMORY_MB, settings: { enablePush: false } });
    fresh.on("error", () => {});
    this.sessions[at] = fresh;
    return fresh;
  }

  close(): void {
    for (const s of this.sessions) s.destroy();
  }
}

/** Runs `fn` over `items` with at most `limit` in flight (setup calls: grants, revokes, seeds). */
export async function forEachLimited<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
