/**
 * Repetitions → one cell per workload and target: the median of every metric over the runs that
 * succeeded, or why there is no figure (n/a, or every run failed). Memory rows are read off other
 * workloads' runs (RSS at their sample point).
 */
import { median } from "../load/stats.js";
import type { RunResult } from "../harness/runner.js";
import type { Profile } from "../profile.js";
import type { TargetSpec } from "../targets.js";
import { DEFAULT_REFERENCE, type Reference, type WorkloadKind, type WorkloadSpec } from "../workloads.js";

export interface Cell {
  /** Medians over successful runs. */
  m: Record<string, number | undefined>;
  runs: number;
  failedRuns: number;
  /** First failure of a run, when any failed. */
  error?: string;
  /** First error a successful run saw (calls that failed among many that did not). */
  firstCallError?: string;
  /** Set when the target does not run this workload, with the reason. */
  na?: string;
}

export interface WorkloadSummary {
  id: string;
  title: string;
  kind: WorkloadKind;
  cells: Record<string, Cell>;
  /** What the ratios are against; `ref` is that cell (undefined when it has no figure). */
  reference: Reference;
  ref?: Cell;
}

const RUN_METRICS = [
  "throughput", "p50", "p99", "units", "errors", "proxyCpuMsPer1k", "etcdCpuMsPer1k", "genCpuMsPer1k", "genBusyPct",
  "proxyRssMB", "sampleRssMB", "rssBeforeMB", "kbPerClient", "etcdWatchers", "etcdWatchStreams", "etcdKeepAliveStreams",
] as const;

/** Where each memory row takes its figure from: workload and field. */
const MEMORY_SOURCE: Record<string, [string, keyof RunResult]> = {
  "memory-idle": ["memory-idle", "proxyRssMB"],
  "memory-watchers": ["watch-10k", "sampleRssMB"],
  "memory-leases": ["lease-keepalive", "sampleRssMB"],
};

function cellOf(runs: RunResult[]): Cell {
  const ok = runs.filter((r) => r.ok);
  const m: Record<string, number | undefined> = {};
  for (const k of RUN_METRICS) m[k] = median(ok.map((r) => r[k] as number | undefined));
  const extraKeys = new Set(ok.flatMap((r) => Object.keys(r.extra)));
  for (const k of extraKeys) m[k] = median(ok.map((r) => r.extra[k]));
  const failed = runs.find((r) => !r.ok);
  const callErr = ok.find((r) => r.firstError)?.firstError;
  return { m, runs: runs.length, failedRuns: runs.length - ok.length, ...(failed?.error ? { error: failed.error } : {}), ...(callErr ? { firstCallError: callErr } : {}) };
}

export function summarize(workloads: WorkloadSpec[], targets: TargetSpec[], results: RunResult[], p: Profile, naOverride: Map<string, string>): WorkloadSummary[] {
  return workloads.map((w) => {
    const cells: Record<string, Cell> = {};
    for (const t of targets) {
      const support = t.supports(w.id);
      const na = naOverride.get(`${w.id}/${t.id}`) ?? (support.run === false ? support.naReason : undefined);
      if (na) {
        cells[t.id] = { m: {}, runs: 0, failedRuns: 0, na };
        continue;
      }
      if (w.kind === "memory") {
        const [from, field] = MEMORY_SOURCE[w.id]!;
        // Idle is the fresh process's reading (the first repetition's), whatever older runs stored.
        const runs = results.filter((r) => r.workload === from && r.target === t.id && (from !== "memory-idle" || r.rep === 0));
        const cell = cellOf(runs);
        const ok = runs.filter((r) => r.ok);
        cell.m = { rssMB: median(ok.map((r) => r[field] as number | undefined)), kbPerClient: median(ok.map((r) => r.kbPerClient)) };
        if (runs.length === 0) cell.na = `${from} did not run`;
        cells[t.id] = cell;
        continue;
      }
      cells[t.id] = cellOf(results.filter((r) => r.workload === w.id && r.target === t.id));
    }
    return { id: w.id, title: w.title(p), kind: w.kind, cells, reference: w.reference ?? DEFAULT_REFERENCE };
  }).map((s, _, all) => {
    const from = s.reference.workload ? all.find((o) => o.id === s.reference.workload) : s;
    const ref = from?.cells[s.reference.target];
    return ref ? { ...s, ref } : s;
  });
}
