/**
 * bench/chart.svg, written by hand: one group of horizontal bars per throughput workload, one bar per
 * target, length = req/s ÷ the reference's req/s (etcd grpc-proxy's unless the workload names another),
 * with a line at 1.0×. No chart library.
 */
import type { TargetSpec } from "../targets.js";
import { fmt, fmtRatio, ratio } from "./markdown.js";
import type { WorkloadSummary } from "./summary.js";

const COLORS = [
  "#7f8c8d", "#2c3e50", "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#d4ac0d",
  "#2980b9", "#a04000", "#1e8449", "#6c3483", "#f1948a", "#5dade2", "#58d68d", "#bb8fce", "#34495e",
];
const WIDTH = 860;
const LABEL_W = 250;
const BAR_AREA = WIDTH - LABEL_W - 160;
const BAR_H = 12;
const GAP = 3;
/** Bars are drawn up to this ratio; longer ones are cut and marked, so one outlier does not flatten the rest. */
const MAX_RATIO = 4;

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function chart(ws: WorkloadSummary[], targets: TargetSpec[]): string {
  const groups = ws.filter((w) => w.kind === "loop");
  const rows: { w: WorkloadSummary; bars: { t: TargetSpec; i: number; r: number | undefined; text: string }[] }[] = [];
  let scaleMax = 1.2;
  for (const w of groups) {
    const base = w.ref?.m["throughput"];
    const bars = targets.flatMap((t, i) => {
      const c = w.cells[t.id];
      if (!c || c.na) return [];
      const v = c.m["throughput"];
      const r = ratio(v, base);
      if (r !== undefined) scaleMax = Math.max(scaleMax, Math.min(r, MAX_RATIO));
      return [{ t, i, r, text: v === undefined ? "failed" : `${fmt(v, "int")}/s${r === undefined ? "" : ` (${fmtRatio(r)})`}` }];
    });
    rows.push({ w, bars });
  }
  const x = (r: number) => LABEL_W + (Math.min(r, MAX_RATIO) / scaleMax) * BAR_AREA;
  const parts: string[] = [];
  let y = 60;
  for (const { w, bars } of rows) {
    const vs = w.reference.target === "grpc-proxy" && !w.reference.workload ? "" : ` (1.0× = ${w.reference.label})`;
    parts.push(`<text x="8" y="${y + 10}" font-weight="bold">${esc(w.id + vs)}</text>`);
    y += 16;
    for (const b of bars) {
      const color = COLORS[b.i % COLORS.length]!;
      parts.push(`<text x="${LABEL_W - 6}" y="${y + BAR_H - 2}" text-anchor="end">${esc(b.t.label)}</text>`);
      if (b.r !== undefined) {
        parts.push(`<rect x="${LABEL_W}" y="${y}" width="${(x(b.r) - LABEL_W).toFixed(1)}" height="${BAR_H}" fill="${color}"/>`);
        if (b.r > MAX_RATIO) parts.push(`<text x="${x(b.r) - 4}" y="${y + BAR_H - 2}" text-anchor="end" fill="#fff">»</text>`);
      }
      parts.push(`<text x="${(b.r === undefined ? LABEL_W : x(b.r)) + 5}" y="${y + BAR_H - 2}">${esc(b.text)}</text>`);
      y += BAR_H + GAP;
    }
    y += 10;
  }
  const height = y + 10;
  const one = x(1);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="8" y="20" font-size="14" font-weight="bold">Throughput relative to etcd grpc-proxy (median req/s; 1.0× = grpc-proxy)</text>`,
    `<text x="8" y="38" fill="#555">Longer is better. Bars past ${MAX_RATIO}× are cut (»). Ceilings: what a Node server can do at best here.</text>`,
    `<line x1="${one.toFixed(1)}" y1="48" x2="${one.toFixed(1)}" y2="${height - 8}" stroke="#c0392b" stroke-dasharray="4 3"/>`,
    `<text x="${one.toFixed(1)}" y="56" text-anchor="middle" fill="#c0392b">1.0×</text>`,
    ...parts,
    `</svg>`,
    "",
  ].join("\n");
}
