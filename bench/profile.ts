/**
 * How big a run is. `full` is what bench/results.md reports; `quick` is the few-minute run CI does so the
 * benchmark never rots (tiny counts, one repetition, results under bench/out/quick, no assertions on
 * timings). Command-line flags override single fields.
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { QUICK_TARGETS } from "./targets.js";
import { ROWS_NOT_IN_QUICK, WORKLOAD_IDS } from "./workloads.js";

export interface Profile {
  name: "full" | "quick";
  reps: number;
  warmupMs: number;
  durationMs: number;
  /** Generator processes for closed loops; 1 on a 2-core machine (a second one takes the target's core). */
  genProcs: number;
  /** Closed loops: `concurrency` clients over `connections` HTTP/2 connections (etcd benchmark's --clients/--conns too). */
  unary: { connections: number; concurrency: number };
  /** etcd's benchmark: requests of the warm-up run, which also sizes the measured run (--total) to durationMs. */
  etcdBenchmark: { warmupTotal: number; minTotal: number };
  /** HTTP/1.1 has one request per socket at a time: concurrency = sockets. */
  gateway: { sockets: number };
  watch: { small: number; large: number; connections: number; puts: number; deliveryTimeoutMs: number; setupTimeoutMs: number };
  /** watch-history: this many watchers, each from a different one of the last `watchers` revisions. */
  history: { watchers: number };
  lease: { streams: number; connections: number; rounds: number; spreadMs: number; gapMs: number; timeoutMs: number; ttlSeconds: number; setupTimeoutMs: number };
  oneshot: { connections: number; concurrency: number; timeoutMs: number; ttlSeconds: number };
  /** Where results.md/.json and chart.svg go. */
  outDir: string;
  /** Only these targets / workloads (ids), when given. */
  targets?: string[];
  workloads?: string[];
  /** etcd's benchmark binary, when given on the command line. */
  etcdBenchmarkPath?: string;
}

const BENCH_DIR = fileURLToPath(new URL(".", import.meta.url));

export function fullProfile(): Profile {
  return {
    name: "full",
    reps: 3,
    warmupMs: 2000,
    durationMs: 6000,
    genProcs: 1,
    // The standard load: 50 clients over 10 connections.
    unary: { connections: 10, concurrency: 50 },
    etcdBenchmark: { warmupTotal: 5000, minTotal: 2000 },
    gateway: { sockets: 50 },
    // The watcher counts of the RSS-per-watcher goal: 2,000 and 10,000 (the row ids watch-1k/watch-10k stay, CI knows them).
    watch: { small: 2000, large: 10_000, connections: 100, puts: 100, deliveryTimeoutMs: 5000, setupTimeoutMs: 60_000 },
    history: { watchers: 1000 },
    // TTL 30 s: etcd's proxy answers a second keep-alive only after TTL/3 = 10 s, past the 5 s timeout;
    // that is its behaviour, and the timeouts column shows it.
    // 1,000 streams: the keep-alive p99 goal's count.
    lease: { streams: 1000, connections: 100, rounds: 3, spreadMs: 2000, gapMs: 1000, timeoutMs: 5000, ttlSeconds: 30, setupTimeoutMs: 60_000 },
    oneshot: { connections: 8, concurrency: 64, timeoutMs: 5000, ttlSeconds: 30 },
    outDir: BENCH_DIR,
  };
}

export function quickProfile(): Profile {
  return {
    ...fullProfile(),
    name: "quick",
    reps: 1,
    warmupMs: 300,
    durationMs: 1000,
    unary: { connections: 2, concurrency: 16 },
    etcdBenchmark: { warmupTotal: 500, minTotal: 500 },
    gateway: { sockets: 4 },
    watch: { small: 20, large: 100, connections: 10, puts: 10, deliveryTimeoutMs: 2000, setupTimeoutMs: 20_000 },
    history: { watchers: 50 },
    lease: { streams: 50, connections: 10, rounds: 2, spreadMs: 200, gapMs: 200, timeoutMs: 2000, ttlSeconds: 30, setupTimeoutMs: 20_000 },
    oneshot: { connections: 2, concurrency: 8, timeoutMs: 2000, ttlSeconds: 30 },
    outDir: resolve(BENCH_DIR, "out", "quick"),
    targets: QUICK_TARGETS,
    workloads: WORKLOAD_IDS.filter((w) => !ROWS_NOT_IN_QUICK.includes(w)),
  };
}

export const USAGE = `usage: npm run bench [-- options]
  --quick            small CI run (few seconds per workload, tiny counts, 1 repetition) into bench/out/quick;
                     etcd, grpc-proxy, etcd-edge on Node/Deno/Bun, the Node ceilings, the static responders and
                     the rows test/e2e/bench-quick.test.ts knows, unless --targets/--workloads say otherwise
  --reps=N           repetitions (medians are reported)                       full: 3
  --duration=S       measured seconds per closed-loop run                     full: 6
  --warmup=S         warm-up seconds before each measured window              full: 2
  --gen-procs=N      load generator processes per closed loop                 full: 1
  --targets=a,b      only these targets (ids: see bench/targets.ts)
  --workloads=a,b    only these workloads (ids: see bench/workloads.ts)
  --etcd-benchmark=P etcd's benchmark binary       default: $ETCD_BENCHMARK, else bash ../shared/tools/etcd-benchmark.sh
  --out=DIR          write results.md, results.json and chart.svg there
  --from-json=FILE   run nothing: rebuild results.md, .json and chart.svg from a results.json (next to it, or --out)`;

export function parseArgs(argv: string[]): Profile {
  const p = argv.includes("--quick") ? quickProfile() : fullProfile();
  for (const arg of argv) {
    const [name, value = ""] = arg.split("=", 2) as [string, string?];
    const num = () => {
      const n = Number(value);
      if (!(n > 0)) throw new Error(`${name} needs a positive number, got "${value}"\n${USAGE}`);
      return n;
    };
    switch (name) {
      case "--quick": break;
      case "--reps": p.reps = Math.round(num()); break;
      case "--duration": p.durationMs = num() * 1000; break;
      case "--warmup": p.warmupMs = num() * 1000; break;
      case "--gen-procs": p.genProcs = Math.round(num()); break;
      case "--targets": p.targets = value.split(",").filter(Boolean); break;
      case "--workloads": p.workloads = value.split(",").filter(Boolean); break;
      case "--out": p.outDir = resolve(value); break;
      case "--etcd-benchmark": p.etcdBenchmarkPath = resolve(value); break;
      default: throw new Error(`unknown option ${arg}\n${USAGE}`);
    }
  }
  return p;
}
