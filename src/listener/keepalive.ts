/**
 * --grpc-keepalive-interval and --grpc-keepalive-timeout: every HTTP/2 client connection of the listener is
 * pinged each interval, and one whose ping is not acknowledged within the timeout is closed. A client that
 * vanished without a FIN or RST (its host powered off, a NAT or firewall that forgot the flow) would
 * otherwise keep its connection, its watches and its keep-alive streams, and their upstream shares, for as
 * long as TCP keepalive takes to notice (hours with Linux defaults).
 *
 * etcd's proxy hands the same two values to grpc-go's server keepalive (keepalive.ServerParameters Time and
 * Timeout), which pings after an interval without activity; this pings every interval whatever the traffic,
 * one 8-byte PING and its ACK per connection per interval. HTTP/1.1 connections carry no pings (TCP
 * keepalive only, server.ts).
 */
import type * as http2 from "node:http2";

export interface KeepAlive {
  /** Ping every this often; with timeoutMs, > 0 (options.ts leaves pings off when either is 0). */
  intervalMs: number;
  /** Close the connection when a ping is not acknowledged within this. */
  timeoutMs: number;
}

export function pingClients(server: http2.Http2Server | http2.Http2SecureServer, o: KeepAlive, log: (msg: string) => void): void {
  server.on("session", (session: http2.ServerHttp2Session) => {
    // Owned by this session's timer only: at most one ping awaits its ACK at a time.
    let noAck: ReturnType<typeof setTimeout> | undefined;
    const timer = setInterval(() => {
      if (noAck !== undefined || session.closed || session.destroyed) return;
      noAck = setTimeout(() => {
        const peer = session.socket ? `${session.socket.remoteAddress}:${session.socket.remotePort}` : "a client";
        log(`etcd-edge: ${peer} did not acknowledge a keepalive ping within ${o.timeoutMs} ms (--grpc-keepalive-timeout): connection closed`);
        session.destroy();
      }, o.timeoutMs);
      noAck.unref?.();
      const acked = () => {
        clearTimeout(noAck);
        noAck = undefined;
      };
      try {
        // The callback also runs, with an error, when the session ends first: either way this ping is over.
        if (!session.ping(acked)) acked();
      } catch {
        acked(); // the session was destroyed between the check above and the ping
      }
    }, o.intervalMs);
    timer.unref?.();
    session.once("close", () => {
      clearInterval(timer);
      clearTimeout(noAck);
    });
  });
}
