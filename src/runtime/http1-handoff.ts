/**
 * How a sniffed cleartext HTTP/1.1 connection reaches the HTTP/1.1 server. Node and Bun (>= 1.4) take a
 * connection handed over with `emit("connection")`; Deno needs a detour (deno.ts). The listener asks
 * runtime.ts for the right one and never knows which it got.
 */
import type * as http from "node:http";
import type { Socket } from "node:net";

export interface Http1Handoff {
  /** Serve HTTP/1.1 on `socket`, whose first bytes were read and put back (unshift) by the sniffer. */
  accept(socket: Socket): void;
  /** Release what the handoff itself opened (Deno's private loopback server); sockets are the caller's. */
  close(): Promise<void>;
}

/** Node and Bun: the HTTP/1.1 server takes the socket as if it had accepted it itself. */
export function directHandoff(server: http.Server): Http1Handoff {
  return {
    accept: (socket) => void server.emit("connection", socket),
    close: async () => {},
  };
}
