/**
 * Deno's workarounds. Deno's node:http serves only the first request of a connection handed over with
 * `emit("connection")`: the response says keep-alive, then Deno closes the socket, and the client's next
 * request on it fails (ECONNRESET/EPIPE). A server that accepted its connections itself keeps them alive.
 * So on Deno the HTTP/1.1 server listens on a private loopback port and each sniffed connection is spliced
 * to it: keep-alive works, at the cost of one loopback hop for HTTP/1.1 only (HTTP/2 is handed over
 * directly, which Deno handles).
 */
import type * as http from "node:http";
import * as net from "node:net";
import type { Http1Handoff } from "./http1-handoff.js";

export async function splicedHandoff(server: http.Server): Promise<Http1Handoff> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // Port 0 on the IPv4 loopback: nothing outside this process's machine can reach it, and only the
    // splice below knows the port.
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const privatePort = (server.address() as net.AddressInfo).port;
  /**
   * The client's socket by the local port of the splice's own connection to the private server, so that
   * a request still sees the client's address (req.socket.remoteAddress), not 127.0.0.1. Entries live as
   * long as that connection, so the map is bounded by the open connections.
   */
  const frontByBackPort = new Map<number, net.Socket>();
  server.on("connection", (accepted: net.Socket) => {
    const key = accepted.remotePort ?? -1;
    // Looked up when read (after both ends have connected), not now: the accept and the connect events
    // of one loopback connection may fire in either order.
    for (const prop of ["remoteAddress", "remotePort", "remoteFamily"] as const) {
      const own = accepted[prop];
      Object.defineProperty(accepted, prop, { configurable: true, get: () => frontByBackPort.get(key)?.[prop] ?? own });
    }
  });
  return {
    accept(front) {
      const back = net.connect({ host: "127.0.0.1", port: privatePort });
      back.setNoDelay(true);
      back.once("connect", () => {
        const key = back.localPort;
        if (key === undefined) return;
        frontByBackPort.set(key, front);
        back.once("close", () => frontByBackPort.delete(key));
      });
      // Either side failing or closing ends the other; pipe() applies backpressure both ways, so neither
      // direction buffers more than a stream's high-water mark.
      front.on("error", () => back.destroy());
      back.on("error", () => front.destroy());
      front.once("close", () => back.destroy());
      back.once("close", () => front.destroy());
      front.pipe(back);
      back.pipe(front);
    },
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
