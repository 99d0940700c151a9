/**
 * A TCP forwarder on a free loopback port to another address: a second way to reach the same etcd, that a
 * test can slow down or take away (close() ends every connection through it). Stopped when the test ends.
 */
import { connect, createServer, type Socket } from "node:net";

export interface Forwarder {
  /** "127.0.0.1:port" */
  addr: string;
  port: number;
  /** Connections accepted so far. */
  accepted: number;
  /** Delay of each chunk towards the client (ms), 0 by default. */
  delayMs: number;
  close(): Promise<void>;
}

interface Tap { teardown(fn: () => unknown): void }

/** `port`: listen there (a forwarder closed earlier comes back on its old port), else on a free one. */
export async function startForwarder(t: Tap | undefined, to: { host: string; port: number }, port = 0): Promise<Forwarder> {
  const sockets = new Set<Socket>();
  const fwd: Forwarder = { addr: "", port: 0, accepted: 0, delayMs: 0, close };
  const server = createServer((client) => {
    fwd.accepted++;
    const upstream = connect(to.port, to.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => { client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      if (fwd.delayMs === 0) client.write(chunk);
      else setTimeout(() => { if (!client.destroyed) client.write(chunk); }, fwd.delayMs);
    });
    upstream.on("end", () => setTimeout(() => client.end(), fwd.delayMs));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  fwd.port = (server.address() as { port: number }).port;
  fwd.addr = `127.0.0.1:${fwd.port}`;
  let closed = false;
  function close(): Promise<void> {
    if (closed) return Promise.resolve();
    closed = true;
    for (const s of sockets) s.destroy();
    return new Promise((resolve) => server.close(() => resolve()));
  }
  t?.teardown(close);
  return fwd;
}
