/**
 * gRPC closed loops driven by etcd's own `benchmark` tool (go.etcd.io/etcd/tools/benchmark, a Go gRPC
 * client built from Debian's etcd sources by ../shared/tools/etcd-benchmark.sh), instead of our Node
 * generator: a Node generator on a 2-core machine tops out before etcd and etcd's proxy do.
 *
 * One run: a warm-up run of `warmupTotal` requests, whose Requests/sec sizes the measured run's --total to
 * the profile's duration; then the measured run. Its output gives Requests/sec and the latency percentiles;
 * its CPU comes from /proc like every other process: it runs under `sh`, which once the tool has exited
 * reads its own /proc/<pid>/stat, whose cutime + cstime are the CPU of the children it waited for.
 * The target's and etcd's CPU are read from /proc before and after the measured run, RSS throughout.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Profile } from "../profile.js";
import type { WorkloadSpec } from "../workloads.js";
import { cpuMs, rssMB } from "./proc-stats.js";
import { track } from "./processes.js";
import type { RunResult } from "./runner.js";
import type { RunningTarget, Stack } from "./stack.js";

const CLK_TCK = (() => {
  try { return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100; } catch { return 100; }
})();

/** The tool's path: --etcd-benchmark, $ETCD_BENCHMARK, or what ../shared/tools/etcd-benchmark.sh prints (it builds it once). */
export function resolveEtcdBenchmark(root: string, given?: string): string {
  const path = given ?? process.env["ETCD_BENCHMARK"];
  if (path) {
    if (!existsSync(path)) throw new Error(`etcd benchmark tool not found at ${path}`);
    return path;
  }
  const script = join(root, "..", "shared", "tools", "etcd-benchmark.sh");
  if (!existsSync(script)) throw new Error(`no --etcd-benchmark, no $ETCD_BENCHMARK and no ${script} to build it`);
  const out = execFileSync("bash", [script], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 20 * 60_000 }).trim().split("\n").pop() ?? "";
  if (!existsSync(out)) throw new Error(`${script} printed "${out}", which does not exist`);
  return out;
}

export interface BenchmarkOutput {
  requestsPerSec: number;
  totalSecs: number;
  /** Percentile (10, 25, 50, 75, 90, 95, 99, 99.9) → ms. */
  percentilesMs: Record<string, number>;
  errors: number;
  firstError?: string;
}

/** Parses the tool's report (Summary, Latency distribution, Error distribution). */
export function parseBenchmarkOutput(text: string): BenchmarkOutput | undefined {
  const rps = /Requests\/sec:\s+([0-9.]+)/.exec(text);
  const total = /Total:\s+([0-9.]+) secs/.exec(text);
  if (!rps || !total) return undefined;
  const percentilesMs: Record<string, number> = {};
  for (const m of text.matchAll(/^\s*([0-9.]+)% in ([0-9.]+) secs\./gm)) percentilesMs[m[1]!] = Number(m[2]) * 1000;
  let errors = 0;
  let firstError: string | undefined;
  const errAt = text.indexOf("Error distribution:");
  if (errAt >= 0) {
    for (const m of text.slice(errAt).matchAll(/^\s*\[(\d+)\]\s+(.*)$/gm)) {
      errors += Number(m[1]);
      firstError ??= m[2]!.trim();
    }
  }
  return { requestsPerSec: Number(rps[1]), totalSecs: Number(total[1]), percentilesMs, errors, ...(firstError ? { firstError } : {}) };
}

interface ToolRun {
  out: BenchmarkOutput;
  /** CPU of the tool (user + system, all its threads) and its wall time, in ms. */
  cpuMs: number;
  wallMs: number;
}

function runTool(bin: string, args: string[], budgetMs: number, name: string): Promise<ToolRun> {
  return new Promise((resolve, reject) => {
    // `read` is a shell builtin: nothing else the shell waits for adds to cutime/cstime.
    const script = '"$@"; rc=$?; read -r s < /proc/$$/stat; echo "ETCD_EDGE_BENCH_STAT $s"; exit $rc';
    const t0 = Date.now();
    const proc = spawn("sh", ["-c", script, "sh", bin, ...args], { stdio: ["ignore", "pipe", "pipe"], detached: true });
    track(name, proc);
    let out = "";
    let err = "";
    proc.stdout.on("data", (d: Buffer) => { out = (out + d.toString()).slice(-200_000); });
    proc.stderr.on("data", (d: Buffer) => { err = (err + d.toString()).slice(-20_000); });
    const timer = setTimeout(() => { try { process.kill(-proc.pid!, "SIGKILL"); } catch { /* gone */ } }, budgetMs);
    proc.on("error", (e) => { clearTimeout(timer); reject(e); });
    proc.on("exit", (code, signal) => {
      clearTimeout(timer);
      const wallMs = Date.now() - t0;
      const tail = () => `${out.replace(/\r/g, "\n").split("\n").filter((l) => l.trim() && !l.includes("INFO:")).slice(-8).join(" / ")} ${err.split("\n").filter((l) => l.trim() && !l.includes("INFO:")).slice(-5).join(" / ")}`;
      if (signal) return reject(new Error(`etcd benchmark killed (${signal}) after ${Math.round(wallMs / 1000)} s: ${tail()}`));
      const parsed = parseBenchmarkOutput(out);
      const stat = /ETCD_EDGE_BENCH_STAT (.*)$/m.exec(out)?.[1];
      if (code !== 0 || !parsed) return reject(new Error(`etcd benchmark ${args.join(" ")} exited ${code}: ${tail()}`));
      // Fields after the command name (last ')'): cutime and cstime are fields 16 and 17 of stat.
      const f = stat ? stat.slice(stat.lastIndexOf(")") + 2).split(" ") : [];
      const cpu = f.length > 14 ? ((Number(f[13]) + Number(f[14])) * 1000) / CLK_TCK : NaN;
      resolve({ out: parsed, cpuMs: cpu, wallMs });
    });
  });
}

export async function runEtcdBenchmark(w: WorkloadSpec, target: RunningTarget, stack: Stack, p: Profile, rep: number): Promise<RunResult> {
  const base: RunResult = { workload: w.id, target: target.spec.id, rep, ok: false, units: 0, errors: 0, extra: {} };
  const isProxy = target.spec.role !== "etcd";
  let rssTimer: ReturnType<typeof setInterval> | undefined;
  try {
    if (!p.etcdBenchmarkPath) throw new Error("no etcd benchmark tool");
    const endpoint = new URL(target.url).host;
    const common = [`--endpoints=${endpoint}`, `--conns=${p.unary.connections}`, `--clients=${p.unary.concurrency}`, "--precise", "--dial-timeout=10s"];
    const [sub, ...subArgs] = w.etcdBenchmark!;
    const name = `etcd benchmark ${w.id}/${target.spec.id}`;
    // Warm-up, and the rate that sizes the measured run: a first run of warmupTotal requests; when it took
    // less than half the warm-up time (dial and ramp weigh on its rate), a second one sized to the warm-up time.
    const warmRun = (total: number) => runTool(p.etcdBenchmarkPath!, [...common, sub!, ...subArgs, `--total=${total}`], 4 * p.warmupMs + 60_000, name);
    let warm = await warmRun(p.etcdBenchmark.warmupTotal);
    if (warm.out.totalSecs * 1000 < p.warmupMs / 2) warm = await warmRun(Math.max(p.etcdBenchmark.warmupTotal, Math.round((warm.out.requestsPerSec * p.warmupMs) / 1000)));
    const total = Math.max(p.etcdBenchmark.minTotal, Math.round((warm.out.requestsPerSec * p.durationMs) / 1000));
    if (isProxy) base.rssBeforeMB = rssMB(target.pid);
    let rssPeak = 0;
    const pollRss = () => { if (isProxy) rssPeak = Math.max(rssPeak, rssMB(target.pid)); };
    rssTimer = setInterval(pollRss, 250);
    const readCpu = () => ({ proxy: isProxy ? cpuMs(target.pid) : 0, etcd: cpuMs(stack.etcdPid) });
    const cpu0 = readCpu();
    // Bounded: four times the expected time, plus a minute.
    const run = await runTool(p.etcdBenchmarkPath, [...common, sub!, ...subArgs, `--total=${total}`], 4 * p.durationMs + 60_000, name);
    const cpu1 = readCpu();
    pollRss();
    clearInterval(rssTimer);
    if (target.managed?.exited()) throw new Error(`${target.spec.label} exited during the run: ${target.managed.output().slice(-1000)}`);
    const o = run.out;
    const units = Math.round(o.requestsPerSec * o.totalSecs);
    const per1k = (ms: number) => (units > 0 && ms >= 0 ? (ms * 1000) / units : undefined);
    return {
      ...base,
      ok: units > 0,
      ...(units > 0 ? {} : { error: `no successful call${o.firstError ? `: ${o.firstError}` : ""}` }),
      throughput: o.requestsPerSec,
      p50: o.percentilesMs["50"],
      p99: o.percentilesMs["99"],
      units,
      errors: o.errors,
      ...(o.firstError ? { firstError: o.firstError } : {}),
      proxyCpuMsPer1k: isProxy ? per1k(cpu1.proxy - cpu0.proxy) : undefined,
      etcdCpuMsPer1k: per1k(cpu1.etcd - cpu0.etcd),
      genCpuMsPer1k: Number.isFinite(run.cpuMs) ? per1k(run.cpuMs) : undefined,
      // Share of one core over the tool's whole life (start and dial included); Go may use both cores (> 100%).
      ...(Number.isFinite(run.cpuMs) ? { genBusyPct: (100 * run.cpuMs) / run.wallMs } : {}),
      proxyRssMB: isProxy ? rssPeak : undefined,
      extra: {
        requests: total, toolSeconds: o.totalSecs, ...(o.percentilesMs["99.9"] !== undefined ? { p999: o.percentilesMs["99.9"] } : {}),
        warmupRequestsPerSec: warm.out.requestsPerSec, ...(target.restarts ? { targetRestarts: target.restarts } : {}),
      },
    };
  } catch (err) {
    return { ...base, ok: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearInterval(rssTimer);
  }
}
