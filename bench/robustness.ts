/**
 * `node --import tsx bench/robustness.ts [--seconds=120] [--seed=N]`: the long form of the robustness test
 * (test/faults/robustness.test.ts, whose short form runs 7 s per scenario in `npm test`): the same four
 * fault scenarios (single etcd SIGKILL and restart, SIGSTOP and resume, a 3-member cluster losing its
 * leader, the network to the member in use reset and stalled), each with `--seconds` of randomized workload
 * and a fault every 2-6 s, then the same checks (linearizability, watches, acknowledged writes, leases,
 * serializable reads against the cache). Writes one JSON line per scenario to bench/out/robustness.jsonl
 * and a table to bench/out/robustness.md; exits with tap's status. Not part of `npm run bench`: it measures
 * correctness, not speed, and wants the machine to itself no more than the test suite does.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT = join(ROOT, "bench", "out");
const arg = (name: string) => process.argv.slice(2).find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const seconds = Number(arg("seconds") ?? 120);
const seed = arg("seed") ?? String(Math.floor(Math.random() * 2 ** 31));

interface Figures {
  scenario: string;
  seed: number;
  seconds: number;
  linearizable: number;
  unknownWrites: number;
  serializable: number;
  ackedPuts: number;
  watchEvents: number;
  faults: string[];
  recoveryMs: number[];
  longestWriteGapMs: number[];
}

mkdirSync(OUT, { recursive: true });
const jsonl = join(OUT, "robustness.jsonl");
rmSync(jsonl, { force: true });
// Four scenarios of `seconds` each, plus start-up and checking; tap's own timeout well above that.
const timeout = 4 * seconds * 3 + 600;
const run = spawnSync("npx", ["tap", `--timeout=${timeout}`, "test/faults/robustness.test.ts"], {
  cwd: ROOT,
  stdio: "inherit",
  env: { ...process.env, ROBUSTNESS_SECONDS: String(seconds), ROBUSTNESS_SEED: seed, ROBUSTNESS_REPORT: jsonl },
});

let rows: Figures[] = [];
try { rows = readFileSync(jsonl, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Figures); } catch { /* no scenario finished */ }
const range = (xs: number[]) => (xs.length ? `${Math.min(...xs)}-${Math.max(...xs)}` : "-");
const md = [
  `# Robustness, long form: seed ${seed}, ${seconds} s per scenario, tap exit ${run.status}`,
  "",
  "| scenario | s | KV ops checked (unknown outcome) | serializable reads | acknowledged puts | watch events | faults | recovery ms | longest write gap ms |",
  "|---|---|---|---|---|---|---|---|---|",
  ...rows.map((r) => `| ${r.scenario} | ${r.seconds} | ${r.linearizable} (${r.unknownWrites}) | ${r.serializable} | ${r.ackedPuts} | ${r.watchEvents} | ${r.faults.length} | ${range(r.recoveryMs)} | ${range(r.longestWriteGapMs)} |`),
  "",
].join("\n");
writeFileSync(join(OUT, "robustness.md"), md);
process.stdout.write(md);
process.exit(run.status ?? 1);
