/**
 * Writes results.md, results.json and chart.svg for a set of runs, and reads a results.json back, so the
 * report of a finished run can be rebuilt without running again (`--from-json`).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RunResult } from "../harness/runner.js";
import type { Profile } from "../profile.js";
import type { TargetSpec } from "../targets.js";
import type { WorkloadSpec } from "../workloads.js";
import { chart } from "./chart.js";
import { evaluateGoals, type GoalResult } from "./goals.js";
import { markdown, type RunInfo } from "./markdown.js";
import { summarize, type WorkloadSummary } from "./summary.js";

export interface StoredRun extends RunInfo {
  profile: Profile;
  targets: { id: string; label: string; role: string }[];
  /** "workload/target" → why that cell is n/a although the target is listed (probe failed, did not start). */
  naOverrides?: Record<string, string>;
  summary: WorkloadSummary[];
  /** The targets of bench/report/goals.ts, met / missed / generator-bound / n/a. */
  goals?: GoalResult[];
  runs: RunResult[];
}

export function writeReports(outDir: string, p: Profile, workloads: WorkloadSpec[], targets: TargetSpec[], runs: RunResult[], na: Map<string, string>, info: RunInfo): { md: string; summary: WorkloadSummary[] } {
  const summary = summarize(workloads, targets, runs, p, na);
  mkdirSync(outDir, { recursive: true });
  const md = markdown(summary, targets, p, info);
  writeFileSync(join(outDir, "results.md"), md);
  const stored: StoredRun = {
    ...info, profile: p, targets: targets.map(({ id, label, role }) => ({ id, label, role })), naOverrides: Object.fromEntries(na), summary, goals: evaluateGoals(summary, targets), runs,
  };
  writeFileSync(join(outDir, "results.json"), `${JSON.stringify(stored, null, 2)}\n`);
  writeFileSync(join(outDir, "chart.svg"), chart(summary, targets));
  return { md, summary };
}

export function readStoredRun(path: string): StoredRun {
  const s = JSON.parse(readFileSync(path, "utf8")) as StoredRun;
  if (!Array.isArray(s.runs) || !s.profile || !s.command) throw new Error(`${path} is not a results.json written by npm run bench`);
  return s;
}
