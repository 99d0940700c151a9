/**
 * The columns of the benchmark: what runs in front of etcd. A target is a name and a command line; adding
 * one is one more entry here. The command
 * must start the server itself or a launcher of it: CPU and RSS are read for its whole process tree.
 */
import { execFileSync } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface TargetContext {
  /** host:port the target must listen on. */
  listen: string;
  /** etcd's client address as host:port, and as a URL. */
  etcdEndpoint: string;
  etcdUrl: string;
  /** Repository root and the directory of the bundled bench scripts. */
  root: string;
  buildDir: string;
  /** A scratch directory of its own. */
  dataDir: string;
}

export type Support = { run: true } | { run: "probe"; naReason: string } | { run: false; naReason: string };

export interface TargetSpec {
  id: string;
  label: string;
  /** etcd: etcd itself (no process of its own); proxy: what users choose between; ceiling: reference servers. */
  role: "etcd" | "proxy" | "ceiling";
  command?(c: TargetContext): string[];
  supports(workloadId: string): Support;
  /** How the stack knows it is up: a correct Range (default) or just an open port (the bare server). */
  ready?: "range" | "port";
  /** The runtime it runs on, for the goals (ceilings and the idle-RSS reference of the same runtime). */
  runtime?: RuntimeId;
}

const RUN = { run: true } as const;
const na = (naReason: string): Support => ({ run: false, naReason });
const GRPC_ONLY = [
  "range-serializable", "range-linearizable", "range-linearizable-many", "list-linearizable", "put", "txn-cas", "txn-put", "proto-grpc", "watch-history",
  "watch-1k", "watch-10k", "lease-keepalive", "lease-oneshot", "noisy-neighbour",
];
const isWebOrConnect = (w: string) => w.startsWith("proto-") && w !== "proto-grpc";
const isGateway = (w: string) => w.startsWith("json-gateway");
/** The target every ratio is computed against. */
export const BASELINE = "grpc-proxy";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * The machine's Node: the first `node` on PATH outside node_modules (npm run puts node_modules/.bin first,
 * where the npm `node` package's binary is), else the Node running the bench.
 */
export const SYSTEM_NODE = (() => {
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (!dir || dir.includes("node_modules")) continue;
    try { accessSync(join(dir, "node"), constants.X_OK); return join(dir, "node"); } catch { /* next */ }
  }
  return process.execPath;
})();
/** The npm `node` package (the current Node LTS) when installed in this repository. */
export const LTS_NODE = [join(ROOT, "node_modules", "node", "bin", "node"), join(ROOT, "node_modules", ".bin", "node")].find((p) => existsSync(p));
const LTS_MISSING = "not installed (no node_modules/node/bin/node nor node_modules/.bin/node: the npm `node` package is not in node_modules)";

export type RuntimeId = "node" | "node-lts" | "deno" | "bun";
const versionOf = (cmd: string, args = ["--version"]) => {
  try { return execFileSync(cmd, args, { encoding: "utf8", timeout: 10_000 }).split("\n")[0]!.trim(); } catch { return "not available"; }
};
/** Versions for the report's machine facts. */
export function runtimeVersions(): Record<string, string> {
  return {
    "node (etcd-edge (Node), ceilings)": `${versionOf(SYSTEM_NODE)} (${SYSTEM_NODE})`,
    "node LTS (npm node package)": LTS_NODE ? `${versionOf(LTS_NODE)} (${LTS_NODE})` : LTS_MISSING,
    deno: versionOf("deno"),
    bun: versionOf("bun"),
    "etcd benchmark tool": "etcd's tools/benchmark, built by ../shared/tools/etcd-benchmark.sh",
  };
}

interface Runtime {
  id: RuntimeId;
  /** The column suffix; Node (the machine's) keeps the plain labels. */
  name: string;
  /** Command prefix, or why it cannot run. */
  argv: string[] | undefined;
  missing?: string;
}

const RUNTIMES: Runtime[] = [
  { id: "node", name: "Node", argv: [SYSTEM_NODE] },
  { id: "node-lts", name: "Node LTS", argv: LTS_NODE ? [LTS_NODE] : undefined, missing: LTS_MISSING },
  // deno and bun are the npm packages' binaries (node_modules/.bin, on PATH under `npm run`).
  { id: "deno", name: "Deno", argv: ["deno", "run", "-A"] },
  { id: "bun", name: "Bun", argv: ["bun"] },
];

/** The prefixes of the list and watch-history rows, which etcd-edge keeps in its watch cache. */
const WATCH_CACHE_FLAGS = ["--watch-cache-prefix=bench/list/", "--watch-cache-prefix=bench/hist/"];

/** etcd-edge under a runtime: the compiled bin (dist/), as users run it. */
function edge(r: Runtime): TargetSpec {
  return {
    id: r.id === "node" ? "edge-node" : `edge-${r.id}`, label: `etcd-edge (${r.name})`, role: "proxy", runtime: r.id,
    ...(r.argv ? { command: (c: TargetContext) => [...r.argv!, `${c.root}/bin/etcd-edge.js`, "start", `--endpoints=${c.etcdEndpoint}`, `--listen-addr=${c.listen}`, ...WATCH_CACHE_FLAGS] } : {}),
    supports: () => (r.argv ? RUN : na(r.missing!)),
  };
}

/** The ceilings of one runtime: the bundled scripts (bench/out/.build) run by it. */
function ceilings(r: Runtime): TargetSpec[] {
  const suffix = r.id === "node" ? "" : `-${r.id}`;
  const labelSuffix = r.id === "node" ? "" : `, ${r.name}`;
  const cmd = (script: string) => (r.argv ? { command: (c: TargetContext) => [...r.argv!, `${c.buildDir}/${script}.mjs`, `--listen=${c.listen}`, `--etcd=${c.etcdUrl}`] } : {});
  const out: TargetSpec[] = [
    {
      id: `passthrough${suffix}`, label: `HTTP/2 pass-through (ceiling${labelSuffix})`, role: "ceiling", runtime: r.id, ...cmd("passthrough"),
      supports: (w) => (!r.argv ? na(r.missing!) : GRPC_ONLY.includes(w) || w.startsWith("memory-") ? RUN : na("pipes gRPC to etcd, which speaks gRPC only")),
    },
    {
      id: `static${suffix}`, label: `static responder (ceiling${labelSuffix})`, role: "ceiling", runtime: r.id, ...cmd("static-range"),
      supports: (w) => (!r.argv ? na(r.missing!) : w === "range-serializable" || w === "proto-grpc" || w === "memory-idle" ? RUN : na("answers KV.Range from memory only")),
    },
  ];
  if (r.id === "node" || r.id === "node-lts") {
    out.push({
      id: `bare-h2${suffix}`, label: `bare HTTP/2 server (${r.name})`, role: "ceiling", runtime: r.id, ready: "port", ...cmd("bare-h2"),
      supports: (w) => (!r.argv ? na(r.missing!) : w === "memory-idle" ? RUN : na("idle-RSS reference only")),
    });
  }
  return out;
}

export const TARGETS: TargetSpec[] = [
  {
    id: "etcd", label: "etcd direct", role: "etcd",
    supports: (w) => (isWebOrConnect(w) ? na("etcd speaks gRPC only") : w.startsWith("memory-") ? na("no proxy process") : RUN),
  },
  {
    id: "grpc-proxy", label: "etcd grpc-proxy", role: "proxy",
    command: (c) => ["etcd", "grpc-proxy", "start", `--endpoints=${c.etcdEndpoint}`, `--listen-addr=${c.listen}`, `--data-dir=${c.dataDir}`],
    supports: (w) => (isWebOrConnect(w) ? na("grpc-proxy speaks gRPC only") : isGateway(w) ? na("grpc-proxy has no JSON gateway (/v3/* is 404)") : RUN),
  },
  ...RUNTIMES.map(edge),
  {
    // etcd-edge with --fairness (off by default), beside the same build without it: the noisy-neighbour row only.
    id: "edge-node-fairness", label: "etcd-edge (Node, --fairness)", role: "proxy", runtime: "node",
    command: (c) => [SYSTEM_NODE, `${c.root}/bin/etcd-edge.js`, "start", `--endpoints=${c.etcdEndpoint}`, `--listen-addr=${c.listen}`, ...WATCH_CACHE_FLAGS, "--fairness"],
    supports: (w) => (w === "noisy-neighbour" ? RUN : na("etcd-edge (Node) with --fairness: the noisy-neighbour row only")),
  },
  ...RUNTIMES.flatMap(ceilings),
];

/**
 * What `--quick` runs when no --targets is given: the original columns, the static responders of Deno and
 * Bun and Node's bare server (three runs each). Node LTS and the other ceilings: full run, or --targets.
 */
export const QUICK_TARGETS = ["etcd", "grpc-proxy", "edge-node", "edge-deno", "edge-bun", "passthrough", "static", "static-deno", "static-bun", "bare-h2"];
