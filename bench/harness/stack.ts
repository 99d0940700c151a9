/**
 * What the benchmark runs against: one fresh etcd and every target in front of it, each on free loopback
 * ports, started once per run, restarted if one dies (the run notes it), stopped by PID at the end.
 */
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ClientHttp2Session } from "node:http2";
import { openSession, unaryAsync } from "../load/grpc-raw.js";
import { CAS_VALUE, casKey, compactRequest, HOT_KEY, HOT_VALUE_BYTES, LIST_KEYS, listKey, LIST_VALUE_BYTES, MANY_KEYS, manyKey, MANY_VALUE_BYTES, PATH, putRequest, rangeReply, rangeRequest } from "../load/messages.js";
import type { TargetSpec } from "../targets.js";
import { freePort, portOpen, waitFor } from "./ports.js";
import { startProcess, type Managed } from "./processes.js";

export interface RunningTarget {
  spec: TargetSpec;
  url: string;
  /** The process whose tree is measured (etcd's own for the etcd target). */
  pid: number;
  managed: Managed | undefined;
  restarts: number;
}

export interface StackOptions {
  root: string;
  buildDir: string;
  log: (msg: string) => void;
}

/** Checks a target answers Range for the hot key as etcd does: reachable, speaking gRPC, forwarding right. */
async function probeRange(url: string): Promise<void> {
  const s = await openSession(url, 3000);
  try {
    const r = rangeReply(await unaryAsync(s, PATH.range, rangeRequest(true), 3000));
    if (r.key !== HOT_KEY || r.valueBytes !== HOT_VALUE_BYTES) throw new Error(`Range(${HOT_KEY}) answered key "${r.key}" with ${r.valueBytes} bytes`);
  } finally {
    s.destroy();
  }
}

export class Stack {
  readonly targets = new Map<string, RunningTarget>();
  private readonly scratch = mkdtempSync(join(tmpdir(), "etcd-edge-bench-"));
  etcdUrl = "";
  etcdEndpoint = "";
  private etcd: Managed | undefined;
  private etcdSession: ClientHttp2Session | undefined;

  constructor(private readonly o: StackOptions) {}

  get etcdPid(): number {
    return this.etcd!.pid;
  }

  async startEtcd(): Promise<void> {
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    this.etcdEndpoint = `127.0.0.1:${clientPort}`;
    this.etcdUrl = `http://${this.etcdEndpoint}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    this.etcd = startProcess("etcd", "etcd", [
      "--name", "bench", "--data-dir", join(this.scratch, "etcd"),
      "--listen-client-urls", this.etcdUrl, "--advertise-client-urls", this.etcdUrl,
      "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", `bench=${peer}`,
      "--log-level", "error", "--logger", "zap",
    ]);
    await waitFor("etcd to listen", async () => {
      if (this.etcd!.exited()) throw new Error(`etcd exited: ${this.etcd!.output()}`);
      return portOpen(clientPort);
    }, 20_000);
    this.etcdSession = await openSession(this.etcdUrl);
  }

  /** The keys every workload relies on: the hot key, one compare-and-swap key per Txn slot, the many and the listed keys. */
  async seed(casSlots: number[]): Promise<void> {
    const s = this.etcdSession!;
    await unaryAsync(s, PATH.put, putRequest(HOT_KEY, new Uint8Array(HOT_VALUE_BYTES).fill(0x68)));
    await Promise.all(casSlots.map((slot) => unaryAsync(s, PATH.put, putRequest(casKey(slot), CAS_VALUE))));
    const many = new Uint8Array(MANY_VALUE_BYTES).fill(0x6d);
    for (let i = 0; i < MANY_KEYS; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, MANY_KEYS - i) }, (_, j) => unaryAsync(s, PATH.put, putRequest(manyKey(i + j), many))));
    }
    const listed = new Uint8Array(LIST_VALUE_BYTES).fill(0x6c);
    for (let i = 0; i < LIST_KEYS; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, LIST_KEYS - i) }, (_, j) => unaryAsync(s, PATH.put, putRequest(listKey(i + j), listed))));
    }
  }

  /** Compacts etcd's history to its current revision, so write workloads do not grow it run after run. */
  async compact(): Promise<void> {
    const s = this.etcdSession!;
    const { revision } = rangeReply(await unaryAsync(s, PATH.range, rangeRequest(false)));
    await unaryAsync(s, PATH.compact, compactRequest(revision)).catch(() => { /* already compacted to it */ });
  }

  async startTarget(spec: TargetSpec): Promise<RunningTarget> {
    if (spec.role === "etcd" || !spec.command) {
      const t: RunningTarget = { spec, url: this.etcdUrl, pid: this.etcd!.pid, managed: undefined, restarts: 0 };
      this.targets.set(spec.id, t);
      return t;
    }
    const port = await freePort();
    const dataDir = join(this.scratch, spec.id);
    mkdirSync(dataDir, { recursive: true });
    const [cmd, ...args] = spec.command({
      listen: `127.0.0.1:${port}`, etcdEndpoint: this.etcdEndpoint, etcdUrl: this.etcdUrl, root: this.o.root, buildDir: this.o.buildDir, dataDir,
    });
    const managed = startProcess(spec.id, cmd!, args, { cwd: dataDir });
    const url = `http://127.0.0.1:${port}`;
    await waitFor(`${spec.label} to answer Range on ${url}`, async () => {
      if (managed.exited()) throw new Error(`${spec.label} exited: ${managed.output().slice(-2000)}`);
      if (!(await portOpen(port))) return false;
      if (spec.ready !== "port") await probeRange(url);
      return true;
    }, 30_000).catch(async (err) => { await managed.stop(); throw err; });
    const prev = this.targets.get(spec.id);
    const t: RunningTarget = { spec, url, pid: managed.pid, managed, restarts: prev ? prev.restarts + 1 : 0 };
    this.targets.set(spec.id, t);
    return t;
  }

  /** The target, restarted first if its process has died since the last run. */
  async ensure(id: string): Promise<RunningTarget> {
    const t = this.targets.get(id)!;
    if (!t.managed?.exited()) return t;
    this.o.log(`${t.spec.label} had exited (output: ${t.managed.output().slice(-500)}); restarting it`);
    return this.startTarget(t.spec);
  }

  async stop(): Promise<void> {
    this.etcdSession?.destroy();
    await Promise.all([...this.targets.values()].map((t) => t.managed?.stop()));
    await this.etcd?.stop();
    rmSync(this.scratch, { recursive: true, force: true });
  }

  /** Synchronous clean-up for a signal: processes are killed elsewhere; remove the scratch directory. */
  removeScratch(): void {
    rmSync(this.scratch, { recursive: true, force: true });
  }
}
