/**
 * The performance targets etcd-edge is held to, each marked met / missed from a run's medians. A figure
 * measured while the load generator (ours or etcd's benchmark tool) was above GENERATOR_BOUND_PCT of a core
 * is the generator's limit as much as the target's: such a comparison is marked `generator-bound` and is
 * not counted as met (nor as missed). A cell without a figure makes the goal `n/a`, with the reason.
 */
import type { TargetSpec } from "../targets.js";
import type { Cell, WorkloadSummary } from "./summary.js";

/** Above this share of one core, a closed loop's generator is (also) the limit. */
export const GENERATOR_BOUND_PCT = 90;

export type Verdict = "met" | "missed" | "generator-bound" | "n/a";

export interface GoalResult {
  goal: string;
  target: string;
  /** What was compared: the figure, the reference figure, and the bound on their ratio (or on the figure). */
  row: string;
  value?: number;
  reference?: number;
  referenceLabel: string;
  /** `value / reference` (or `value` when there is no reference) must be >= min or <= max. */
  min?: number;
  max?: number;
  measured?: number;
  unit: string;
  verdict: Verdict;
  why?: string;
}

export function generatorBound(c: Cell | undefined, kind: string): boolean {
  const busy = c?.m["genBusyPct"];
  return kind === "loop" && busy !== undefined && busy > GENERATOR_BOUND_PCT;
}

const hasFigure = (c: Cell | undefined, key: string): c is Cell =>
  !!c && !c.na && !(c.runs > 0 && c.failedRuns === c.runs) && c.m[key] !== undefined && Number.isFinite(c.m[key]);

function whyNoFigure(c: Cell | undefined, label: string): string {
  if (!c) return `${label} not in this run`;
  if (c.na) return `${label}: ${c.na}`;
  if (c.runs > 0 && c.failedRuns === c.runs) return `${label} failed`;
  return `${label} has no figure`;
}

interface Spec {
  goal: string;
  workload: string;
  key: string;
  unit: string;
  /** Targets (ids) the goal is about, with the reference cell of each (undefined: an absolute bound). */
  subjects: { target: string; ref?: { workload?: string; target: string } }[];
  min?: number;
  max?: number;
}

const EDGES = ["edge-node", "edge-node-lts", "edge-deno", "edge-bun"];
const runtimeSuffix = (edge: string) => (edge === "edge-node" ? "" : `-${edge.slice("edge-".length)}`);

const SPECS: Spec[] = [
  {
    goal: "Serializable cached Range ≥ 0.9× the static responder of the same runtime", workload: "range-serializable", key: "throughput", unit: "req/s", min: 0.9,
    subjects: EDGES.map((e) => ({ target: e, ref: { target: `static${runtimeSuffix(e)}` } })),
  },
  { goal: "Serializable cached Range ≥ 1.0× etcd grpc-proxy under Bun", workload: "range-serializable", key: "throughput", unit: "req/s", min: 1, subjects: [{ target: "edge-bun", ref: { target: "grpc-proxy" } }] },
  ...["put", "txn-put", "txn-cas"].flatMap((w): Spec[] => [
    { goal: `${w === "put" ? "Put" : `Txn (${w})`} ≥ 0.8× etcd grpc-proxy on Node's LTS`, workload: w, key: "throughput", unit: "req/s", min: 0.8, subjects: [{ target: "edge-node-lts", ref: { target: "grpc-proxy" } }] },
    { goal: `${w === "put" ? "Put" : `Txn (${w})`} ≥ 1.0× etcd grpc-proxy under Bun`, workload: w, key: "throughput", unit: "req/s", min: 1, subjects: [{ target: "edge-bun", ref: { target: "grpc-proxy" } }] },
  ]),
  ...["watch-1k", "watch-10k"].map((w): Spec => ({
    goal: `Proxy RSS per watcher ≤ etcd grpc-proxy's (${w})`, workload: w, key: "kbPerClient", unit: "KB/watcher", max: 1,
    subjects: EDGES.map((e) => ({ target: e, ref: { target: "grpc-proxy" } })),
  })),
  {
    goal: "Idle RSS ≤ 1.5× a bare Node HTTP/2 server's (same Node; Deno and Bun against the machine's Node)", workload: "memory-idle", key: "rssMB", unit: "MB", max: 1.5,
    subjects: EDGES.map((e) => ({ target: e, ref: { target: e === "edge-node-lts" ? "bare-h2-node-lts" : "bare-h2" } })),
  },
  { goal: "Keep-alive p99 ≤ 20 ms (lease-keepalive)", workload: "lease-keepalive", key: "p99", unit: "ms", max: 20, subjects: EDGES.map((e) => ({ target: e })) },
  {
    goal: "Linearizable list of 2,000 keys ≥ 5× etcd grpc-proxy (watch cache)", workload: "list-linearizable", key: "throughput", unit: "req/s", min: 5,
    subjects: EDGES.map((e) => ({ target: e, ref: { target: "grpc-proxy" } })),
  },
  {
    goal: "etcd's CPU per linearizable list ≤ 0.1× with etcd grpc-proxy in front (watch cache)", workload: "list-linearizable", key: "etcdCpuMsPer1k", unit: "ms/1k", max: 0.1,
    subjects: EDGES.map((e) => ({ target: e, ref: { target: "grpc-proxy" } })),
  },
  { goal: "Watchers from 1,000 different recent revisions: at most one watcher at etcd (watch-history)", workload: "watch-history", key: "etcdWatchers", unit: "watchers", max: 1, subjects: EDGES.map((e) => ({ target: e })) },
  { goal: "Watchers from 1,000 different recent revisions: every stream is etcd's history (watch-history)", workload: "watch-history", key: "mismatchedStreams", unit: "streams differing", max: 0, subjects: EDGES.map((e) => ({ target: e })) },
  {
    goal: "Noisy neighbour: the quiet client's p99 beside the noise ≤ 2× its p99 alone (--fairness)", workload: "noisy-neighbour", key: "noiseRatio", unit: "× alone", max: 2,
    subjects: [{ target: "edge-node-fairness" }],
  },
  ...["watch-1k", "watch-10k"].map((w): Spec => ({
    goal: `Watch delivery p99 ≤ etcd grpc-proxy's (${w})`, workload: w, key: "p99", unit: "ms", max: 1,
    subjects: EDGES.map((e) => ({ target: e, ref: { target: "grpc-proxy" } })),
  })),
];

export function evaluateGoals(ws: WorkloadSummary[], targets: TargetSpec[]): GoalResult[] {
  const label = (id: string) => targets.find((t) => t.id === id)?.label ?? id;
  const out: GoalResult[] = [];
  for (const s of SPECS) {
    const w = ws.find((x) => x.id === s.workload);
    for (const sub of s.subjects) {
      const refW = sub.ref?.workload ? ws.find((x) => x.id === sub.ref!.workload) : w;
      const base: GoalResult = {
        goal: s.goal, target: label(sub.target), row: s.workload, referenceLabel: sub.ref ? label(sub.ref.target) : "", unit: s.unit, verdict: "n/a",
        ...(s.min !== undefined ? { min: s.min } : {}), ...(s.max !== undefined ? { max: s.max } : {}),
      };
      if (!targets.some((t) => t.id === sub.target)) { out.push({ ...base, target: sub.target, why: `${sub.target} not in this run (--targets)` }); continue; }
      if (!w) { out.push({ ...base, why: `${s.workload} not in this run` }); continue; }
      const c = w.cells[sub.target];
      const r = sub.ref ? refW?.cells[sub.ref.target] : undefined;
      if (!hasFigure(c, s.key)) { out.push({ ...base, why: whyNoFigure(c, label(sub.target)) }); continue; }
      if (sub.ref && !hasFigure(r, s.key)) { out.push({ ...base, value: c.m[s.key], why: whyNoFigure(r, label(sub.ref.target)) }); continue; }
      const value = c.m[s.key]!;
      const reference = r?.m[s.key];
      const measured = reference !== undefined ? value / reference : value;
      const pass = (s.min === undefined || measured >= s.min) && (s.max === undefined || measured <= s.max);
      const bound = [[c, sub.target], [r, sub.ref?.target]].filter(([cell]) => generatorBound(cell as Cell | undefined, w.kind)).map(([, id]) => label(id as string));
      out.push({
        ...base, value, ...(reference !== undefined ? { reference } : {}), measured,
        verdict: bound.length ? "generator-bound" : pass ? "met" : "missed",
        ...(bound.length ? { why: `generator above ${GENERATOR_BOUND_PCT}% of a core for ${bound.join(" and ")} (${pass ? "would be met" : "would be missed"})` } : {}),
      });
    }
  }
  return out;
}

const fmtNum = (v: number | undefined) => (v === undefined ? "–" : Math.abs(v) >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(2));

export function goalsTable(goals: GoalResult[]): string[] {
  if (!goals.length) return [];
  const count = (v: Verdict) => goals.filter((g) => g.verdict === v).length;
  const lines = [
    `${count("met")} met, ${count("missed")} missed, ${count("generator-bound")} generator-bound (not counted as met), ${count("n/a")} n/a.`,
    "",
    "| goal | target | figure | reference | measured | bound | verdict |",
    "| --- | --- | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const g of goals) {
    const ratio = g.referenceLabel !== "";
    const bound = `${g.min !== undefined ? "≥" : "≤"} ${g.min ?? g.max}${ratio ? "×" : ` ${g.unit}`}`;
    const measured = g.measured === undefined ? "–" : ratio ? `${g.measured.toFixed(2)}×` : `${fmtNum(g.measured)} ${g.unit}`;
    const verdict = g.verdict === "met" ? "**met**" : g.verdict === "missed" ? "**missed**" : g.verdict;
    lines.push(`| ${g.goal} | ${g.target} | ${g.value === undefined ? "–" : `${fmtNum(g.value)} ${g.unit}`} | ${ratio ? `${fmtNum(g.reference)} (${g.referenceLabel})` : "–"} | ${measured} | ${bound} | ${verdict}${g.why ? ` (${g.why})` : ""} |`);
  }
  return lines;
}
