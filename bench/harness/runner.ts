/**
 * One workload against one target: fork the generator process(es), walk them through the IPC sequence
 * (load/protocol.ts), and measure the target from outside: CPU from /proc between go and end, RSS
 * throughout, etcd's own counts when a generator asks for a sample. Every run is bounded in time; a
 * generator that overstays is killed by PID and the run is recorded as failed.
 */
import { fork, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import type { FromGenerator, GenResult, Task, ToGenerator, Window } from "../load/protocol.js";
import { percentile, sortedCopy } from "../load/stats.js";
import type { Profile } from "../profile.js";
import type { WorkloadSpec } from "../workloads.js";
import { runEtcdBenchmark } from "./etcd-benchmark.js";
import { settledEtcdCounts, type EtcdCounts } from "./etcd-metrics.js";
import { cpuMs, rssMB } from "./proc-stats.js";
import { track } from "./processes.js";
import type { RunningTarget, Stack } from "./stack.js";

export interface RunResult {
  workload: string;
  target: string;
  rep: number;
  ok: boolean;
  error?: string;
  /** Successful units (calls, deliveries, keep-alive replies) per second of the measured phase. */
  throughput?: number;
  p50?: number;
  p99?: number;
  units: number;
  errors: number;
  firstError?: string;
  proxyCpuMsPer1k?: number;
  etcdCpuMsPer1k?: number;
  genCpuMsPer1k?: number;
  /** Share of one core the generator processes (or etcd's benchmark tool) used in the measured phase, in %. */
  genBusyPct?: number;
  /** Highest RSS of the target's process tree in the measured phase, and at the sample point. */
  proxyRssMB?: number;
  sampleRssMB?: number;
  /** RSS right before the run, and what each watcher / stream added to it by the sample point, in KB. */
  rssBeforeMB?: number;
  kbPerClient?: number;
  /** etcd's counts at the sample point, minus those before the run. */
  etcdWatchers?: number;
  etcdWatchStreams?: number;
  etcdKeepAliveStreams?: number;
  extra: Record<string, number>;
}

/** How often RSS is read during a run. */
const RSS_POLL_MS = 250;

class GeneratorProcess {
  readonly proc: ChildProcess;
  private readonly waiters = new Map<string, (m: FromGenerator) => void>();
  /** Messages that came before anyone waited for them (one of each type at most: the sequence is strict). */
  private readonly early = new Map<string, FromGenerator>();
  private failure: string | undefined;
  onSample: () => Promise<void> = async () => {};

  constructor(script: string, task: Task, name: string) {
    this.proc = fork(script, [], { execArgv: [], serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] });
    track(name, this.proc);
    this.proc.on("message", (m: FromGenerator) => {
      if (m.type === "failed") return this.fail(m.error);
      if (m.type === "sample") {
        void this.onSample().then(() => this.send({ type: "sampled" }), (err: Error) => this.fail(`sampling failed: ${err.message}`));
        return;
      }
      const w = this.waiters.get(m.type);
      this.waiters.delete(m.type);
      if (w) w(m);
      else this.early.set(m.type, m);
    });
    this.proc.on("exit", (code, signal) => this.fail(`generator exited (${signal ?? code}) before it was done`));
    this.send({ type: "task", task });
  }

  private fail(error: string): void {
    this.failure ??= error;
    for (const w of this.waiters.values()) w({ type: "failed", error: this.failure });
    this.waiters.clear();
  }

  send(m: ToGenerator): void {
    if (this.proc.connected) this.proc.send(m);
  }

  /** The next message of `type`; rejects if the generator fails first. */
  next<T extends FromGenerator["type"]>(type: T): Promise<Extract<FromGenerator, { type: T }>> {
    return new Promise((resolve, reject) => {
      const early = this.early.get(type);
      this.early.delete(type);
      if (early) return resolve(early as Extract<FromGenerator, { type: T }>);
      if (this.failure) return reject(new Error(this.failure));
      this.waiters.set(type, (m) => (m.type === "failed" ? reject(new Error(m.error)) : resolve(m as Extract<FromGenerator, { type: T }>)));
    });
  }

  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
  }
}

/** Upper bound for a whole run, set-up and tear-down included. */
function runBudgetMs(w: WorkloadSpec, p: Profile): number {
  if (w.kind === "watch") return p.watch.setupTimeoutMs + p.watch.puts * (p.watch.deliveryTimeoutMs + 50) + 60_000;
  if (w.kind === "lease") return 2 * p.lease.setupTimeoutMs + p.lease.spreadMs + p.lease.rounds * (p.lease.timeoutMs + p.lease.gapMs) + 60_000;
  return p.warmupMs + p.durationMs + 60_000;
}

function mergeResults(results: GenResult[]): GenResult {
  const latencies = new Float64Array(results.reduce((n, r) => n + r.latenciesMs.length, 0));
  let at = 0;
  for (const r of results) { latencies.set(r.latenciesMs, at); at += r.latenciesMs.length; }
  const extra: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.extra)) extra[k] = (extra[k] ?? 0) + v;
  const firstError = results.find((r) => r.firstError)?.firstError;
  return {
    units: results.reduce((n, r) => n + r.units, 0),
    errors: results.reduce((n, r) => n + r.errors, 0),
    ...(firstError ? { firstError } : {}),
    latenciesMs: latencies,
    seconds: Math.max(...results.map((r) => r.seconds)),
    cpuMs: results.reduce((n, r) => n + r.cpuMs, 0),
    extra,
  };
}

export async function runOne(w: WorkloadSpec, target: RunningTarget, stack: Stack, p: Profile, buildDir: string, rep: number): Promise<RunResult> {
  if (w.etcdBenchmark) return runEtcdBenchmark(w, target, stack, p, rep);
  const procs = w.kind === "loop" ? p.genProcs : 1;
  const base: RunResult = { workload: w.id, target: target.spec.id, rep, ok: false, units: 0, errors: 0, extra: {} };
  const isProxy = target.spec.role !== "etcd";
  let rssPeak = 0;
  let rssTimer: ReturnType<typeof setInterval> | undefined;
  let budgetTimer: ReturnType<typeof setTimeout> | undefined;
  const gens: GeneratorProcess[] = [];
  try {
    // The previous run's streams may still be closing at etcd: wait for its counts to settle first.
    const before: EtcdCounts | undefined = w.kind === "loop" ? undefined : await settledEtcdCounts(stack.etcdUrl);
    if (isProxy) base.rssBeforeMB = rssMB(target.pid);
    for (let i = 0; i < procs; i++) {
      const g = new GeneratorProcess(join(buildDir, "generator.mjs"), w.task!(p, target.url, stack.etcdUrl, { index: i, of: procs }), `generator ${w.id}/${target.spec.id}`);
      gens.push(g);
      g.onSample = async () => {
        base.sampleRssMB = isProxy ? rssMB(target.pid) : undefined;
        const now = await settledEtcdCounts(stack.etcdUrl);
        base.etcdWatchers = now.watchers - before!.watchers;
        base.etcdWatchStreams = now.watchStreams - before!.watchStreams;
        base.etcdKeepAliveStreams = now.keepAliveStreams - before!.keepAliveStreams;
        // Absolute counts too: a stream etcd's proxy kept open since an earlier run adds 0 to the difference.
        base.extra = { ...base.extra, etcdWatchersTotal: now.watchers, etcdWatchStreamsTotal: now.watchStreams, etcdKeepAliveStreamsTotal: now.keepAliveStreams };
      };
    }
    const budget = new Promise<never>((_, reject) => {
      budgetTimer = setTimeout(() => reject(new Error(`run did not finish within ${Math.round(runBudgetMs(w, p) / 1000)} s`)), runBudgetMs(w, p));
    });
    const within = <T>(x: Promise<T>) => Promise.race([x, budget]);
    await within(Promise.all(gens.map((g) => g.next("ready"))));

    let cpu0: { proxy: number; etcd: number } | undefined;
    let cpu1: { proxy: number; etcd: number } | undefined;
    const readCpu = () => ({ proxy: isProxy ? cpuMs(target.pid) : 0, etcd: cpuMs(stack.etcdPid) });
    const pollRss = () => { if (isProxy) rssPeak = Math.max(rssPeak, rssMB(target.pid)); };
    rssTimer = setInterval(pollRss, RSS_POLL_MS);
    const ended = Promise.all(gens.map((g) => g.next("end")));
    if (w.kind === "loop") {
      const startAt = Date.now() + p.warmupMs;
      const window: Window = { startAt, endAt: startAt + p.durationMs };
      const t0 = setTimeout(() => { cpu0 = readCpu(); }, p.warmupMs);
      const t1 = setTimeout(() => { cpu1 = readCpu(); pollRss(); }, p.warmupMs + p.durationMs);
      for (const g of gens) g.send({ type: "go", window });
      await within(ended).finally(() => { clearTimeout(t0); clearTimeout(t1); });
      // The generators' own end-of-window timers may beat ours by a few ms: read now what was not read.
      cpu1 ??= readCpu();
    } else {
      cpu0 = readCpu();
      for (const g of gens) g.send({ type: "go" });
      await within(ended);
      cpu1 = readCpu();
      pollRss();
    }
    clearInterval(rssTimer);
    const resultsP = Promise.all(gens.map((g) => g.next("result")));
    for (const g of gens) g.send({ type: "finish" });
    const r = mergeResults((await within(resultsP)).map((m) => m.result));
    const task = w.task!(p, target.url, stack.etcdUrl, { index: 0, of: 1 });
    const clients = task.kind === "watch-fanout" ? task.watchers : task.kind === "lease-streams" ? task.streams : 0;
    if (clients && base.sampleRssMB !== undefined && base.rssBeforeMB !== undefined) base.kbPerClient = ((base.sampleRssMB - base.rssBeforeMB) * 1024) / clients;

    if (target.managed?.exited()) throw new Error(`${target.spec.label} exited during the run: ${target.managed.output().slice(-1000)}`);
    const sorted = sortedCopy(r.latenciesMs);
    const per1k = (ms: number) => (r.units > 0 && ms >= 0 ? (ms * 1000) / r.units : undefined);
    const used = (k: "proxy" | "etcd") => (cpu0 && cpu1 ? cpu1[k] - cpu0[k] : -1);
    return {
      ...base,
      ok: r.units > 0,
      ...(r.units > 0 ? {} : { error: `no successful ${w.kind === "watch" ? "delivery" : "call"}${r.firstError ? `: ${r.firstError}` : ""}` }),
      throughput: r.units / r.seconds,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      units: r.units,
      errors: r.errors,
      ...(r.firstError ? { firstError: r.firstError } : {}),
      proxyCpuMsPer1k: isProxy ? per1k(used("proxy")) : undefined,
      etcdCpuMsPer1k: per1k(used("etcd")),
      genCpuMsPer1k: per1k(r.cpuMs),
      genBusyPct: (100 * r.cpuMs) / (r.seconds * 1000),
      proxyRssMB: isProxy ? rssPeak : undefined,
      extra: { ...r.extra, ...base.extra, ...(target.restarts ? { targetRestarts: target.restarts } : {}) },
    };
  } catch (err) {
    return { ...base, ok: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearInterval(rssTimer);
    clearTimeout(budgetTimer);
    for (const g of gens) g.kill();
  }
}

/** Idle RSS of a target: nothing connected, read twice 200 ms apart, the lower kept. */
export async function idleRss(target: RunningTarget, rep: number): Promise<RunResult> {
  const a = rssMB(target.pid);
  await new Promise((r) => setTimeout(r, 200));
  const b = rssMB(target.pid);
  return { workload: "memory-idle", target: target.spec.id, rep, ok: a > 0, proxyRssMB: Math.min(a, b), units: 0, errors: 0, extra: {} };
}
