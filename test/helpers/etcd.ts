/**
 * A real etcd for a test: started from PATH on free loopback ports with its own data dir, stopped (by
 * PID) and removed when the test ends.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, portOpen, waitFor } from "./ports.js";

export interface EtcdTls {
  cert: string;
  key: string;
  /** When set, etcd requires client certificates signed by this CA. */
  ca?: string;
}

export interface Etcd {
  /** host:port of the client URL. */
  endpoint: string;
  /** http(s)://host:port */
  url: string;
  dataDir: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface EtcdOptions {
  tls?: EtcdTls;
  extraArgs?: string[];
}

interface Tap { teardown(fn: () => unknown): void }

export async function startEtcd(t: Tap | undefined, o: EtcdOptions = {}): Promise<Etcd> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const dataDir = mkdtempSync(join(tmpdir(), "etcd-edge-test-"));
  const scheme = o.tls ? "https" : "http";
  const url = `${scheme}://127.0.0.1:${clientPort}`;
  const args = [
    "--name", "test",
    "--data-dir", dataDir,
    "--listen-client-urls", url,
    "--advertise-client-urls", url,
    "--listen-peer-urls", `http://127.0.0.1:${peerPort}`,
    "--initial-advertise-peer-urls", `http://127.0.0.1:${peerPort}`,
    "--initial-cluster", `test=http://127.0.0.1:${peerPort}`,
    "--log-level", "error",
    "--logger", "zap",
  ];
  if (o.tls) {
    args.push("--cert-file", o.tls.cert, "--key-file", o.tls.key);
    if (o.tls.ca) args.push("--trusted-ca-file", o.tls.ca, "--client-cert-auth");
  }
  args.push(...(o.extraArgs ?? []));
  const proc = spawn("etcd", args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr!.on("data", (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  let exited = false;
  proc.on("exit", () => { exited = true; });
  const stop = async () => {
    if (!exited) {
      proc.kill("SIGKILL");
      await new Promise((r) => proc.once("exit", r));
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  t?.teardown(stop);
  await waitFor(`etcd on ${url} (stderr: ${stderr})`, async () => {
    if (exited) throw new Error(`etcd exited: ${stderr}`);
    return await portOpen(clientPort);
  });
  return { endpoint: `127.0.0.1:${clientPort}`, url, dataDir, process: proc, stop };
}

