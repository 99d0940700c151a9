/**
 * `npm run bench [-- --quick ...]`: start a fresh etcd and every target in front of it, run every workload
 * against every target in rotated order, repeat, and write medians with ratios to etcd grpc-proxy:
 * results.md, results.json and chart.svg (bench/ for a full run, bench/out/quick for --quick).
 * Exits 1 when a workload that should have run failed on every repetition for some target.
 */
import { execFileSync } from "node:child_process";
import { availableParallelism, cpus, loadavg, release, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleBench, ensureDist } from "./harness/build.js";
import { probeWorkload } from "./harness/probe.js";
import { resolveEtcdBenchmark } from "./harness/etcd-benchmark.js";
import { killAllNow, stopOnSignals } from "./harness/processes.js";
import { idleRss, runOne, type RunResult } from "./harness/runner.js";
import { Stack } from "./harness/stack.js";
import { parseArgs, USAGE, type Profile } from "./profile.js";
import { fmt, type RunInfo } from "./report/markdown.js";
import { readStoredRun, writeReports } from "./report/write.js";
import { runtimeVersions, TARGETS } from "./targets.js";
import { WORKLOADS } from "./workloads.js";

const BENCH_DIR = fileURLToPath(new URL(".", import.meta.url));
const ROOT = join(BENCH_DIR, "..");
const BUILD_DIR = join(BENCH_DIR, "out", ".build");
const started = Date.now();
const log = (msg: string) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`);

function machineFacts(): Record<string, string> {
  const etcd = (() => { try { return execFileSync("etcd", ["--version"]).toString().split("\n")[0]!.replace("etcd Version: ", ""); } catch { return "unknown"; } })();
  return {
    nproc: String(availableParallelism()),
    cpu: cpus()[0]?.model ?? "unknown",
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    kernel: `Linux ${release()}`,
    node: runtimeVersions()["node (etcd-edge (Node), ceilings)"]!,
    ...Object.fromEntries(Object.entries(runtimeVersions()).filter(([k]) => !k.startsWith("node (etcd-edge"))),
    "bench orchestrator and Node generator": `${process.version} (${process.execPath})`,
    etcd,
    "load average at start (1/5/15 min)": loadavg().map((l) => l.toFixed(2)).join(" / "),
  };
}

function commandLine(args: string[]): string {
  if (process.env["npm_lifecycle_event"] === "bench") return `npm run bench${args.length ? ` -- ${args.join(" ")}` : ""}`;
  return `node --import tsx bench/run.ts ${args.join(" ")}`.trim();
}

function describe(r: RunResult): string {
  if (!r.ok) return `FAILED: ${r.error}`;
  const parts = [`${fmt(r.throughput, "int")}/s`, `p50 ${fmt(r.p50)} ms`, `p99 ${fmt(r.p99)} ms`];
  if (r.errors) parts.push(`${r.errors} errors`);
  if (r.proxyCpuMsPer1k !== undefined) parts.push(`cpu ${fmt(r.proxyCpuMsPer1k)} ms/1k`);
  const signed = (n: number | undefined) => (n === undefined ? "?" : n >= 0 ? `+${n}` : String(n));
  if (r.etcdWatchers !== undefined) parts.push(`etcd watchers ${signed(r.etcdWatchers)}`, `keep-alive streams ${signed(r.etcdKeepAliveStreams)}`);
  if (r.sampleRssMB !== undefined) parts.push(`rss ${fmt(r.sampleRssMB, "mb")} MB`);
  return parts.join(", ");
}

async function main(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // `npm run bench -- soak` / `-- fuzz`: the long forms of test/soak and test/fuzz (soak.ts, fuzz.ts).
  if (args[0] === "soak") return (await import("./soak.js")).main(args.slice(1));
  if (args[0] === "fuzz") return (await import("./fuzz.js")).main(args.slice(1));
  const fromJson = args.find((a) => a.startsWith("--from-json="))?.slice("--from-json=".length);
  if (fromJson) return rebuildReport(fromJson, args.filter((a) => !a.startsWith("--from-json=")));
  const p: Profile = parseArgs(args);
  const targets = TARGETS.filter((t) => !p.targets || p.targets.includes(t.id));
  const workloads = WORKLOADS.filter((w) => !p.workloads || p.workloads.includes(w.id));
  if (targets.length === 0 || workloads.length === 0) throw new Error(`no targets or no workloads selected\n${USAGE}`);
  const machine = machineFacts();
  const notes: string[] = [];
  const na = new Map<string, string>();
  const results: RunResult[] = [];

  if (workloads.some((w) => w.etcdBenchmark)) {
    try {
      p.etcdBenchmarkPath = resolveEtcdBenchmark(ROOT, p.etcdBenchmarkPath);
      log(`etcd benchmark tool: ${p.etcdBenchmarkPath}`);
    } catch (err) {
      const msg = `etcd's benchmark tool is not available, its rows are n/a: ${err instanceof Error ? err.message : String(err)}`;
      log(msg);
      notes.push(msg);
      for (const w of workloads) if (w.etcdBenchmark) for (const t of targets) na.set(`${w.id}/${t.id}`, "etcd benchmark tool not available");
    }
  }
  const dist = ensureDist(ROOT);
  log(dist.message);
  if (dist.stale) notes.push(dist.message);
  await bundleBench(BENCH_DIR, BUILD_DIR);
  const stack = new Stack({ root: ROOT, buildDir: BUILD_DIR, log: (m) => { log(m); notes.push(m); } });
  stopOnSignals(() => stack.removeScratch());
  try {
    await stack.startEtcd();
    const casSlots = Array.from({ length: p.genProcs }, (_, i) => Array.from({ length: p.unary.concurrency }, (_, s) => i * 100_000 + s)).flat();
    await stack.seed(casSlots);
    log(`etcd on ${stack.etcdUrl}`);
    for (const t of targets) {
      // A runtime that is not installed: its cells say so (supports()), nothing to start.
      if (t.role !== "etcd" && !t.command) {
        log(`${t.label}: ${t.supports("memory-idle").run === false ? (t.supports("memory-idle") as { naReason: string }).naReason : "no command"}`);
        continue;
      }
      try {
        const running = await stack.startTarget(t);
        log(`${t.label} on ${running.url} (pid ${running.pid})`);
      } catch (err) {
        const msg = `${t.label} did not start: ${err instanceof Error ? err.message : String(err)}`;
        log(msg);
        notes.push(msg);
        for (const w of workloads) na.set(`${w.id}/${t.id}`, "did not start");
      }
    }
    const up = targets.filter((t) => stack.targets.has(t.id));

    for (let rep = 0; rep < p.reps; rep++) {
      // Idle memory of a fresh process, once: after load, runtimes keep what they grew (Go and V8 alike).
      if (rep === 0 && workloads.some((w) => w.kind === "memory")) {
        for (const t of up) if (t.role !== "etcd") results.push(await idleRss(await stack.ensure(t.id), rep));
      }
      for (const [wi, w] of workloads.entries()) {
        if (!w.task && !w.etcdBenchmark) continue;
        const eligible = up.filter((t) => t.supports(w.id).run !== false && !na.has(`${w.id}/${t.id}`));
        const shift = eligible.length ? (rep + wi) % eligible.length : 0;
        for (const t of [...eligible.slice(shift), ...eligible.slice(0, shift)]) {
          const running = await stack.ensure(t.id);
          const support = t.supports(w.id);
          if (support.run === "probe") {
            const problem = await probeWorkload(w.id, running.url);
            if (problem) {
              na.set(`${w.id}/${t.id}`, `${support.naReason} (${problem})`);
              log(`${w.id} / ${t.label}: n/a, ${problem}`);
              continue;
            }
          }
          const r = await runOne(w, running, stack, p, BUILD_DIR, rep);
          results.push(r);
          log(`[rep ${rep + 1}/${p.reps}] ${w.id.padEnd(20)} ${t.label.padEnd(30)} ${describe(r)}`);
          if (w.id === "put" || w.id === "txn-cas" || w.id === "txn-put") await stack.compact();
        }
      }
    }
  } finally {
    await stack.stop();
  }

  machine["load average at end (1/5/15 min)"] = loadavg().map((l) => l.toFixed(2)).join(" / ");
  const info: RunInfo = { command: commandLine(args), startedAt: new Date(started).toISOString(), durationS: (Date.now() - started) / 1000, machine, notes };
  const { md, summary } = writeReports(p.outDir, p, workloads, targets, results, na, info);
  process.stdout.write(`${md.slice(md.indexOf("## Summary"), md.indexOf("![Throughput"))}`);
  log(`wrote ${join(p.outDir, "results.md")}, results.json and chart.svg`);

  const broken = summary.flatMap((w) => Object.entries(w.cells).filter(([, c]) => !c.na && c.runs > 0 && c.failedRuns === c.runs).map(([t, c]) => `${w.id} / ${t}: ${c.error}`));
  const unstarted = [...na.entries()].filter(([, v]) => v === "did not start").map(([k]) => k);
  if (broken.length || unstarted.length) {
    log(`failed on every repetition:\n  ${[...broken, ...unstarted.map((k) => `${k}: did not start`)].join("\n  ")}`);
    return 1;
  }
  return 0;
}

/** `--from-json=bench/results.json`: the report of a finished run rebuilt with the current report code. */
function rebuildReport(path: string, args: string[]): number {
  const stored = readStoredRun(path);
  const outArg = args.find((a) => a.startsWith("--out="));
  const outDir = outArg ? outArg.slice("--out=".length) : dirname(path);
  const ids = new Set(stored.targets.map((t) => t.id));
  const targets = TARGETS.filter((t) => ids.has(t.id));
  const ran = new Set(stored.runs.map((r) => r.workload));
  const workloads = WORKLOADS.filter((w) => ran.has(w.id) || (w.kind === "memory" && ran.has("memory-idle")));
  const { command, startedAt, durationS, machine, notes } = stored;
  writeReports(outDir, stored.profile, workloads, targets, stored.runs, new Map(Object.entries(stored.naOverrides ?? {})), { command, startedAt, durationS, machine, notes });
  log(`rebuilt ${join(outDir, "results.md")}, results.json and chart.svg from ${path}`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(err instanceof Error ? (err.stack ?? err.message) : String(err));
    killAllNow();
    process.exit(1);
  },
);
