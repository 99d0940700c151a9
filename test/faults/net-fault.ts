/**
 * A TCP forwarder whose network can be cut: "drop" resets every connection through it and every new one
 * (as a dead link or a firewall REJECT does), "stall" keeps connections open but moves no byte either way
 * (a partition that drops packets: the peer only notices by its own timeouts), "pass" forwards again. The
 * shared test/helpers/tcp-forwarder.ts can only delay one direction or close for good. Stopped at teardown.
 */
import { connect, createServer, type Socket } from "node:net";

export type NetMode = "pass" | "drop" | "stall";

export interface NetFault {
  /** "127.0.0.1:port" */
  addr: string;
  mode: NetMode;
  set(mode: NetMode): void;
  close(): Promise<void>;
}

interface Tap { teardown(fn: () => unknown): void }

export async function startNetFault(t: Tap, to: { host: string; port: number }): Promise<NetFault> {
  const pairs = new Set<[Socket, Socket]>();
  let mode: NetMode = "pass";
  const server = createServer((client) => {
    if (mode === "drop") { client.resetAndDestroy(); return; }
    const upstream = connect(to.port, to.host);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => { pairs.delete(pair); client.destroy(); upstream.destroy(); };
    for (const s of pair) { s.on("error", end); s.on("close", end); }
    if (mode === "stall") { client.pause(); upstream.pause(); }
    else { client.pipe(upstream); upstream.pipe(client); }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const fault: NetFault = {
    addr: `127.0.0.1:${port}`,
    get mode() { return mode; },
    set(next) {
      mode = next;
      for (const pair of [...pairs]) {
        if (next === "drop") for (const s of pair) s.resetAndDestroy();
        // pipe() resumes a paused source when its destination drains; unpipe so a stall holds.
        else if (next === "stall") { pair[0].unpipe(); pair[1].unpipe(); pair[0].pause(); pair[1].pause(); }
        else { pair[0].pipe(pair[1]); pair[1].pipe(pair[0]); }
      }
    },
    close: () => {
      for (const pair of pairs) for (const s of pair) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  t.teardown(fault.close);
  return fault;
}
