/**
 * `npm run bench -- --quick` keeps working: it starts etcd, etcd grpc-proxy, etcd-edge and the ceilings,
 * runs every workload once with tiny counts, and writes a results table with a row per workload, the JSON
 * and the chart. No timing is asserted: figures are for people, the exit code and the rows are for CI.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** Every row the table must have; a workload dropped from bench/workloads.ts fails this test. */
const WORKLOAD_IDS = [
  "range-serializable", "range-linearizable", "put", "txn-cas",
  "proto-grpc", "proto-grpc-web", "proto-connect-binary", "proto-connect-json", "json-gateway",
  "watch-1k", "watch-10k", "lease-keepalive", "lease-oneshot",
  "memory-idle", "memory-watchers", "memory-leases",
];
const TARGET_LABELS = ["etcd direct", "etcd grpc-proxy", "etcd-edge (Node)", "HTTP/2 pass-through (ceiling)", "static responder (ceiling)"];

// A quick bench takes one to two minutes, more on a busy machine: past the suite's per-file timeout. The
// root test tells the runner (tap) about its own timeout.
t.setTimeout(450_000);

t.test("npm run bench -- --quick writes a table with every workload", { timeout: 420_000 }, async (t) => {
  const out = mkdtempSync(join(tmpdir(), "etcd-edge-bench-quick-"));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  // Its own process group, so the last-resort timeout below reaches npm, the bench and what it started.
  const proc = spawn("npm", ["run", "bench", "--", "--quick", `--out=${out}`], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let log = "";
  proc.stdout.on("data", (d: Buffer) => { log = (log + d.toString()).slice(-40_000); });
  proc.stderr.on("data", (d: Buffer) => { log = (log + d.toString()).slice(-40_000); });
  // The bench bounds every run itself; this is the last resort (it stops its children on SIGTERM).
  const timer = setTimeout(() => { try { process.kill(-proc.pid!, "SIGTERM"); } catch { /* gone */ } }, 400_000);
  const code = await new Promise<number | null>((resolve) => proc.on("exit", (c) => resolve(c)));
  clearTimeout(timer);
  t.equal(code, 0, `bench exits 0 (output tail:\n${log.slice(-6000)})`);

  const mdPath = join(out, "results.md");
  t.ok(existsSync(mdPath), "results.md written");
  const md = existsSync(mdPath) ? readFileSync(mdPath, "utf8") : "";
  const summary = md.slice(md.indexOf("## Summary"), md.indexOf("## How it is measured"));
  const header = summary.split("\n").find((l) => l.startsWith("| workload |")) ?? "";
  for (const label of TARGET_LABELS) t.ok(header.includes(label), `summary has a column for ${label}`);
  for (const id of WORKLOAD_IDS) {
    const row = summary.split("\n").find((l) => l.startsWith(`| \`${id}\` `));
    t.ok(row, `summary has a row for ${id}`);
    // A row has a cell per target; at least one of them is a figure (a number), not n/a or failed.
    t.match(row ?? "", /\| [0-9][0-9,.]* (\([0-9.]+×\) )?\|/, `${id} has at least one measured figure`);
    t.ok(md.includes(`### \`${id}\``), `details for ${id}`);
  }
  t.match(md, /```sh\nnpm run bench -- --quick/, "results.md names the command that produced it");
  t.match(md, /- nproc: \d+/, "machine facts: nproc");
  t.match(md, /- node: v\d+/, "machine facts: node version");
  t.match(md, /- etcd: \d+\.\d+\.\d+/, "machine facts: etcd version");

  const json = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as { summary: { id: string }[]; runs: unknown[] };
  t.same(json.summary.map((w) => w.id), WORKLOAD_IDS, "results.json has every workload, in order");
  t.ok(json.runs.length > 0, "results.json keeps every run");
  const svg = readFileSync(join(out, "chart.svg"), "utf8");
  t.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/, "chart.svg is an SVG");
  t.match(svg, /range-serializable/, "chart has the Range workload");
});
