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


/** One member of a test cluster: its client endpoint, and ways to kill, freeze, thaw and restart it. */
export interface ClusterMember {
  name: string;
  /** host:port of the client URL. */
  endpoint: string;
  /** http://host:port */
  url: string;
  dataDir: string;
  readonly pid: number | undefined;
  /** SIGKILL; resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGSTOP: the process keeps its sockets open and answers nothing. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Starts the member again on the same ports and data dir (after kill()). */
  restart(): Promise<void>;
}

export interface Cluster {
  members: ClusterMember[];
  /** "a,b,c" for --endpoints. */
  endpoints: string;
}

/**
 * `size` etcd members on free loopback ports forming one cluster (--initial-cluster), each with its own
 * data dir; all killed and removed when the test ends.
 */
export async function startCluster(t: Tap | undefined, size = 3, extraArgs: string[] = []): Promise<Cluster> {
  const ports: { client: number; peer: number }[] = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), peer: await freePort() });
  const names = ports.map((_, i) => `m${i}`);
  const initialCluster = ports.map((p, i) => `${names[i]}=http://127.0.0.1:${p.peer}`).join(",");
  const token = `etcd-edge-test-${process.pid}-${Date.now()}`;
  const members = ports.map((p, i) => clusterMember(names[i]!, p.client, p.peer, initialCluster, token, extraArgs));
  t?.teardown(async () => { for (const m of members) await m.kill(); for (const m of members) rmSync(m.dataDir, { recursive: true, force: true }); });
  await Promise.all(members.map((m) => m.restart()));
  return { members, endpoints: members.map((m) => m.endpoint).join(",") };
}

function clusterMember(name: string, clientPort: number, peerPort: number, initialCluster: string, token: string, extraArgs: string[]): ClusterMember {
  const dataDir = mkdtempSync(join(tmpdir(), `etcd-edge-test-${name}-`));
  const url = `http://127.0.0.1:${clientPort}`;
  let proc: ChildProcess | undefined;
  let exited = true;
  let stderr = "";
  const args = [
    "--name", name,
    "--data-dir", dataDir,
    "--listen-client-urls", url,
    "--advertise-client-urls", url,
    "--listen-peer-urls", `http://127.0.0.1:${peerPort}`,
    "--initial-advertise-peer-urls", `http://127.0.0.1:${peerPort}`,
    "--initial-cluster", initialCluster,
    "--initial-cluster-token", token,
    "--initial-cluster-state", "new",
    "--log-level", "error",
    "--logger", "zap",
    ...extraArgs,
  ];
  const member: ClusterMember = {
    name,
    endpoint: `127.0.0.1:${clientPort}`,
    url,
    dataDir,
    get pid() { return proc?.pid; },
    async kill() {
      if (exited || !proc) return;
      const p = proc;
      p.kill("SIGCONT"); // a paused member would not die until continued on some systems
      p.kill("SIGKILL");
      await new Promise((r) => p.once("exit", r));
    },
    pause() { proc?.kill("SIGSTOP"); },
    resume() { proc?.kill("SIGCONT"); },
    async restart() {
      if (!exited) throw new Error(`etcd member ${name} is still running`);
      const p = spawn("etcd", args, { stdio: ["ignore", "ignore", "pipe"] });
      proc = p;
      exited = false;
      p.stderr!.on("data", (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
      p.on("exit", () => { if (proc === p) exited = true; });
      await waitFor(`etcd member ${name} on ${url} (stderr: ${stderr})`, async () => {
        if (exited) throw new Error(`etcd member ${name} exited: ${stderr}`);
        return await portOpen(clientPort);
      }, 30_000);
    },
  };
  return member;
}
