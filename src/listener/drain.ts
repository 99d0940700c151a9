/**
 * A listener's graceful stop (SIGTERM, Proxy.close): what is in flight, and letting it finish. Every request
 * and every bare HTTP/2 stream the listener hands out is counted until it closes. Once stopped, HTTP/2
 * connections get GOAWAY (streams in flight go on; clients open new ones elsewhere) and HTTP/1.1 answers
 * carry `Connection: close`, so the count only falls. Streams do not end by themselves: the services end
 * them with Unavailable when the proxy drains (services/draining.ts), unary calls finish on their own.
 */
import type * as http2 from "node:http2";
import type { StreamTaker } from "../runtime/runtime.js";
import type { RequestHandler } from "./server.js";

export class Drain {
  /** Requests and taken streams not closed yet. */
  private active = 0;
  private stopped = false;
  /** Open HTTP/2 sessions, to send GOAWAY to; each removes itself on close. */
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private waiters: (() => void)[] = [];

  handler(next: RequestHandler): RequestHandler {
    return (req, res) => {
      this.active++;
      res.once("close", () => this.done());
      // An HTTP/1.1 client would send its next request on this connection: tell it to go elsewhere.
      if (this.stopped && req.httpVersionMajor === 1 && !res.headersSent) res.setHeader("connection", "close");
      next(req, res);
    };
  }

  streams(next: StreamTaker): StreamTaker {
    return (stream, headers) => {
      if (!next(stream, headers)) return false; // it goes on to the compat layer, and handler() counts it
      this.active++;
      stream.once("close", () => this.done());
      return true;
    };
  }

  /** Call once per HTTP/2 server of the listener. */
  track(server: http2.Http2Server | http2.Http2SecureServer): void {
    server.on("session", (session: http2.ServerHttp2Session) => {
      if (this.stopped) return void session.close();
      this.sessions.add(session);
      session.once("close", () => this.sessions.delete(session));
    });
  }

  /** GOAWAY to every HTTP/2 connection (node:http2's close: open streams complete, new ones are refused). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const session of this.sessions) {
      try {
        session.close();
      } catch {
        // already destroyed: nothing to tell
      }
    }
  }

  /** Resolves once nothing is in flight. */
  idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private done(): void {
    this.active--;
    if (this.active > 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
