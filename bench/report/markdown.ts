/**
 * bench/results.md: the command and machine first, then one summary table (each workload's headline
 * figure per target, with its ratio to etcd grpc-proxy), the chart, and a detail table per workload.
 */
import type { Profile } from "../profile.js";
import type { TargetSpec } from "../targets.js";
import type { WorkloadKind } from "../workloads.js";
import { evaluateGoals, generatorBound, GENERATOR_BOUND_PCT, goalsTable } from "./goals.js";
import type { Cell, WorkloadSummary } from "./summary.js";

export interface RunInfo {
  command: string;
  startedAt: string;
  durationS: number;
  machine: Record<string, string>;
  notes: string[];
}

interface Column {
  key: string;
  label: string;
  /** Show "(0.85×)" against grpc-proxy's figure. */
  ratio?: boolean;
  digits?: "int" | "ms" | "mb" | "pct";
}

const COLUMNS: Record<WorkloadKind, Column[]> = {
  loop: [
    { key: "throughput", label: "req/s", ratio: true, digits: "int" },
    { key: "p50", label: "p50 ms", ratio: true, digits: "ms" },
    { key: "p99", label: "p99 ms", ratio: true, digits: "ms" },
    { key: "errors", label: "errors", digits: "int" },
    { key: "proxyCpuMsPer1k", label: "proxy CPU ms / 1k req", ratio: true, digits: "ms" },
    { key: "etcdCpuMsPer1k", label: "etcd CPU ms / 1k req", ratio: true, digits: "ms" },
    { key: "proxyRssMB", label: "proxy RSS MB", ratio: true, digits: "mb" },
    { key: "genBusyPct", label: "generator busy % of a core", digits: "pct" },
  ],
  watch: [
    { key: "p50", label: "delivery p50 ms", ratio: true, digits: "ms" },
    { key: "p99", label: "delivery p99 ms", ratio: true, digits: "ms" },
    { key: "units", label: "deliveries", digits: "int" },
    { key: "missingDeliveries", label: "missing", digits: "int" },
    { key: "etcdWatchers", label: "watchers at etcd", digits: "int" },
    { key: "etcdWatchStreams", label: "watch streams at etcd", digits: "int" },
    { key: "sampleRssMB", label: "proxy RSS MB", ratio: true, digits: "mb" },
    { key: "proxyCpuMsPer1k", label: "proxy CPU ms / 1k deliveries", ratio: true, digits: "ms" },
    { key: "etcdCpuMsPer1k", label: "etcd CPU ms / 1k deliveries", digits: "ms" },
  ],
  lease: [
    { key: "p50", label: "keep-alive p50 ms", ratio: true, digits: "ms" },
    { key: "p99", label: "keep-alive p99 ms", ratio: true, digits: "ms" },
    { key: "units", label: "replies", digits: "int" },
    { key: "timeouts", label: "timeouts", digits: "int" },
    { key: "etcdKeepAliveStreams", label: "keep-alive streams at etcd", digits: "int" },
    { key: "sampleRssMB", label: "proxy RSS MB", ratio: true, digits: "mb" },
    { key: "proxyCpuMsPer1k", label: "proxy CPU ms / 1k replies", ratio: true, digits: "ms" },
    { key: "etcdCpuMsPer1k", label: "etcd CPU ms / 1k replies", digits: "ms" },
  ],
  noisy: [
    { key: "p50", label: "quiet p50 ms, with the noise", ratio: true, digits: "ms" },
    { key: "p99", label: "quiet p99 ms, with the noise", ratio: true, digits: "ms" },
    { key: "aloneP99Ms", label: "quiet p99 ms, alone", digits: "ms" },
    { key: "noiseRatio", label: "p99 with the noise / alone", digits: "ms" },
    { key: "noisyPerSec", label: "noisy Ranges / s", digits: "int" },
    { key: "noisyRefused", label: "noisy refused", digits: "int" },
    { key: "errors", label: "quiet errors", digits: "int" },
    { key: "proxyCpuMsPer1k", label: "proxy CPU ms / 1k quiet calls", digits: "ms" },
  ],
  memory: [
    { key: "rssMB", label: "RSS MB", ratio: true, digits: "mb" },
    { key: "kbPerClient", label: "KB per watcher / stream (RSS growth from just before the run)", ratio: true, digits: "mb" },
  ],
};

/** The headline figure of each kind, for the summary table and the chart. */
export const HEADLINE: Record<WorkloadKind, { key: string; label: string; better: "higher" | "lower" }> = {
  loop: { key: "throughput", label: "req/s", better: "higher" },
  watch: { key: "p99", label: "delivery p99 ms", better: "lower" },
  lease: { key: "p99", label: "keep-alive p99 ms", better: "lower" },
  noisy: { key: "p99", label: "quiet client's p99 ms beside the noise", better: "lower" },
  memory: { key: "rssMB", label: "RSS MB", better: "lower" },
};

export function fmt(v: number | undefined, digits: Column["digits"] = "ms"): string {
  if (v === undefined || !Number.isFinite(v)) return "–";
  if (digits === "int") return Math.round(v).toLocaleString("en-US");
  if (digits === "pct") return `${Math.round(v)}%`;
  const a = Math.abs(v);
  return v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2);
}

export function ratio(v: number | undefined, base: number | undefined): number | undefined {
  return v !== undefined && base !== undefined && base !== 0 && Number.isFinite(v) && Number.isFinite(base) ? v / base : undefined;
}

function cellText(c: Cell, col: Column, base: Cell | undefined): string {
  if (c.na) return "n/a";
  if (c.runs > 0 && c.failedRuns === c.runs) return "failed";
  const v = c.m[col.key];
  const r = col.ratio ? ratio(v, base?.m[col.key]) : undefined;
  return r === undefined ? fmt(v, col.digits) : `${fmt(v, col.digits)} (${fmtRatio(r)})`;
}

export function fmtRatio(r: number): string {
  return r < 0.001 ? "<0.001×" : `${r >= 100 ? r.toFixed(0) : r >= 0.1 ? r.toFixed(2) : r.toPrecision(2)}×`;
}

const row = (cells: string[]) => `| ${cells.join(" | ")} |`;

function summaryTable(ws: WorkloadSummary[], targets: TargetSpec[]): string[] {
  const out = [
    row(["workload", "figure", ...targets.map((t) => t.label), `generator-bound (generator > ${GENERATOR_BOUND_PCT}% of a core)`]),
    row(["---", "---", ...targets.map(() => "---:"), "---"]),
  ];
  for (const w of ws) {
    const h = HEADLINE[w.kind];
    const col: Column = { key: h.key, label: h.label, ratio: true, digits: w.kind === "loop" ? "int" : w.kind === "memory" ? "mb" : "ms" };
    const base = w.ref;
    const against = w.reference.target === "grpc-proxy" && !w.reference.workload ? "" : ` (ratios: to ${w.reference.label})`;
    const bound = targets.filter((t) => !w.cells[t.id]!.na && generatorBound(w.cells[t.id], w.kind)).map((t) => t.label);
    out.push(row([`\`${w.id}\` ${w.title}${against}`, `${h.label} (${h.better} is better)`, ...targets.map((t) => cellText(w.cells[t.id]!, col, base)), bound.length ? bound.join(", ") : "–"]));
  }
  return out;
}

function detailTable(w: WorkloadSummary, targets: TargetSpec[]): string[] {
  const cols = COLUMNS[w.kind];
  const base = w.ref;
  const out = [`### \`${w.id}\` ${w.title}`, "", `Ratios are to ${w.reference.label}${w.reference.workload ? "" : "'s figure in this row"}.`, "", row(["target", ...cols.map((c) => c.label)]), row(["---", ...cols.map(() => "---:")])];
  const notes: string[] = [];
  for (const t of targets) {
    const c = w.cells[t.id]!;
    if (c.na) {
      notes.push(`- ${t.label}: n/a, ${c.na}.`);
      continue;
    }
    const mark = (col: Column) => (col.key === "throughput" && generatorBound(c, w.kind) ? " generator-bound" : "");
    out.push(row([t.label, ...cols.map((col) => `${cellText(c, col, base)}${mark(col)}`)]));
    if (c.failedRuns > 0) notes.push(`- ${t.label}: ${c.failedRuns} of ${c.runs} runs failed: ${c.error}`);
    if (c.firstCallError) notes.push(`- ${t.label}: some calls failed, first error: ${c.firstCallError}`);
    const busy = c.m["genBusyPct"];
    if (generatorBound(c, w.kind)) {
      notes.push(`- ${t.label}: generator-bound: the generator was busy ${fmt(busy, "pct")} of a core (above ${GENERATOR_BOUND_PCT}%), so this figure is the generator's limit as much as the target's; goals do not count it as met.`);
    }
    if (c.m["reconnects"]) notes.push(`- ${t.label}: the server closed connections (GOAWAY) and the generator reconnected ${fmt(c.m["reconnects"], "int")} times.`);
  }
  return [...out, ...(notes.length ? ["", ...notes] : []), ""];
}

export function markdown(ws: WorkloadSummary[], targets: TargetSpec[], p: Profile, info: RunInfo): string {
  const machine = Object.entries(info.machine).map(([k, v]) => `- ${k}: ${v}`);
  return [
    `# etcd-edge benchmark (${p.name} run)`,
    "",
    "Produced by:",
    "",
    "```sh",
    info.command,
    "```",
    "",
    `Started ${info.startedAt}, took ${Math.round(info.durationS)} s. ${p.reps} repetition(s), medians reported; targets in rotated order.`,
    `Closed loops: ${fmtMs(p.warmupMs)} warm-up, ${fmtMs(p.durationMs)} measured, ${p.unary.concurrency} calls in flight over ${p.unary.connections} HTTP/2 connections` +
      ` (JSON gateway: ${p.gateway.sockets} HTTP/1.1 sockets), ${p.genProcs} generator process(es).`,
    "",
    "Machine:",
    "",
    ...machine,
    "",
    "## Summary",
    "",
    "Each cell: median, and in brackets its ratio to etcd grpc-proxy's figure in the same run (rows that name another reference use that one).",
    "",
    ...summaryTable(ws, targets),
    "",
    "The last column names the cells that are `generator-bound`: the load generator (etcd's benchmark tool or ours) was above " +
      `${GENERATOR_BOUND_PCT}% of a core, so the figure is (also) the generator's limit (the detail tables mark the cell itself).`,
    "",
    "![Throughput relative to etcd grpc-proxy](chart.svg)",
    "",
    "## Targets: met / missed",
    "",
    "Ratios are medians over medians of this run. `generator-bound` is not counted as met; `n/a` says what was missing (a row not run, a runtime not installed).",
    "",
    ...goalsTable(evaluateGoals(ws, targets)),
    "",
    "## How it is measured",
    "",
    "- etcd (version above) runs on fresh data; etcd grpc-proxy (the same binary), etcd-edge (compiled `dist/`, `bin/etcd-edge.js`) and the two ceilings run in front of it on loopback ports.",
    "- Rows whose title names `etcd benchmark ...` (hot-key Range, Put, Txn of one Put) are driven by etcd's own benchmark tool (tools/benchmark, a Go gRPC client built from Debian's etcd sources by `../shared/tools/etcd-benchmark.sh`) with `--clients` and `--conns` as above: a warm-up run sizes `--total` to the measured duration; req/s and p50/p99 are the tool's Requests/sec and latency distribution; its CPU (all its threads, as a share of one core; Go may use both cores) is the cutime + cstime its `sh` parent reads from /proc/<pid>/stat once it has exited.",
    "- Our own generator is a separate Node process for the rest: the many-keys Range (the tool reads one fixed key), the Txn compare-and-swap, the `proto-*` rows (connect-node clients in each protocol: gRPC, gRPC-Web, Connect), the JSON gateway (HTTP/1.1 keep-alive sockets), watch fan-out (the tool's watch reports no per-delivery latency) and the lease rows (the tool's lease-keepalive opens a stream per request and never closes it: that is neither of our lease rows).",
    "- etcd-edge runs on the machine's Node, on the npm `node` package (Node's LTS, when installed), on Deno and on Bun; each runtime has its own ceilings. The idle-RSS reference is a bare node:http2 server (`bench/ceilings/bare-h2.ts`).",
    "- Ceilings: the HTTP/2 pass-through pipes streams to etcd without decoding a frame; the static responder answers Range from memory with a reply encoded at start-up. Both run on Node with the same generator: they are the best a proxy on this runtime can do here.",
    "- CPU is utime + stime of the target's process tree from /proc/<pid>/stat over the measured window; RSS is VmRSS from /proc/<pid>/status (highest in the window; for watch and lease rows, when every stream is open).",
    "- Watch delivery latency: from the Put's reply (the Put goes straight to etcd) to the watcher reading the event, 0 when the event came first. One generator process reads every delivery one after another, so with thousands of watchers the last ones wait for it: etcd direct's figure is the floor this generator can show. Watchers and keep-alive streams at etcd come from etcd's /metrics (`etcd_debugging_mvcc_watcher_total`; `grpc_server_started_total` − `grpc_server_handled_total` for LeaseKeepAlive), minus the value before the run (results.json also has the absolute counts: etcd's proxy keeps its one upstream keep-alive stream open across runs, so it may add 0).",
    `- Whether the generator is the limit: each closed-loop table gives the generator's busy share of one core; above ${GENERATOR_BOUND_PCT}% the cell is marked generator-bound. A target well below the static ceiling, with the generator far from busy, is limited by itself.`,
    ...(info.notes.length ? ["", "Notes from this run:", "", ...info.notes.map((n) => `- ${n}`)] : []),
    "",
    "## Details",
    "",
    ...ws.flatMap((w) => detailTable(w, targets)),
  ].join("\n");
}

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`;
}
