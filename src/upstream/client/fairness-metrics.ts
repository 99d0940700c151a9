/**
 * /metrics of --fairness, per flow with bounded cardinality: the TOP_FLOWS flows that cost the most
 * seats lately (each read halves every flow's cost, so the ranking follows the present) plus "other" for
 * the rest, so a client that comes from many addresses or with many tokens adds no series.
 */
import type { Metrics } from "../../observe/metrics.js";
import type { Admission, Flow } from "./fairness.js";

/** Flows shown by name: 10, so each per-flow metric has at most 11 series. */
export const TOP_FLOWS = 10;

export interface FlowRow {
  flow: string;
  inUse: number;
  queued: number;
  rejected: number;
}

/** The rows /metrics shows now: the top flows by cost, then "other" (always present). Halves the costs. */
export function flowRows(a: Admission): FlowRow[] {
  const ranked = [...a.flows.values()].filter((f) => f.cost > 0 || f.inUse > 0 || f.queued > 0 || f.rejected > 0)
    .sort((x, y) => y.cost - x.cost);
  const row = (f: Flow): FlowRow => ({ flow: f.name, inUse: f.inUse, queued: f.queued, rejected: f.rejected });
  const rows = ranked.slice(0, TOP_FLOWS).map(row);
  const other: FlowRow = { flow: "other", inUse: 0, queued: 0, rejected: a.otherRejected };
  for (const f of ranked.slice(TOP_FLOWS)) {
    other.inUse += f.inUse;
    other.queued += f.queued;
    other.rejected += f.rejected;
  }
  rows.push(other);
  for (const f of a.flows.values()) f.cost /= 2;
  return rows;
}

export function registerFairnessMetrics(metrics: Metrics, a: Admission): void {
  // One ranking per scrape for the three metrics (they are collected one after the other).
  let rows: FlowRow[] = [];
  let at = 0;
  const now = (): FlowRow[] => {
    if (Date.now() - at > 1000) {
      rows = flowRows(a);
      at = Date.now();
    }
    return rows;
  };
  metrics.gaugeFrom("etcd_edge_fairness_seats", "Seats toward etcd (--fairness-seats).", () => a.o.seats);
  metrics.gaugeFrom("etcd_edge_fairness_seats_in_use", "Seats in use toward etcd now, all flows.", () => a.inUse);
  metrics.labelledGaugeFrom("etcd_edge_fairness_flow_seats_in_use", "Seats a flow holds toward etcd now (top flows by cost, the rest as \"other\").", "flow", () => now().map((r) => [r.flow, r.inUse]));
  metrics.labelledGaugeFrom("etcd_edge_fairness_flow_queued", "Calls of a flow waiting for seats now.", "flow", () => now().map((r) => [r.flow, r.queued]));
  metrics.labelledGaugeFrom("etcd_edge_fairness_flow_rejected", "Calls of a flow refused ResourceExhausted since the start (queue full or waited too long).", "flow", () => now().map((r) => [r.flow, r.rejected]));
}
