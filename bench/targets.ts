/**
 * The columns of the benchmark: what runs in front of etcd. A target is a name and a command line; adding
 * one is one more entry here. The command
 * must start the server itself or a launcher of it: CPU and RSS are read for its whole process tree.
 */
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
}

const RUN = { run: true } as const;
const na = (naReason: string): Support => ({ run: false, naReason });
const GRPC_ONLY = ["range-serializable", "range-linearizable", "put", "txn-cas", "proto-grpc", "watch-1k", "watch-10k", "lease-keepalive", "lease-oneshot"];
const isWebOrConnect = (w: string) => w.startsWith("proto-") && w !== "proto-grpc";
/** The target every ratio is computed against. */
export const BASELINE = "grpc-proxy";

/** etcd-edge under a runtime: the compiled bin (dist/), as users run it. */
function edge(id: string, label: string, runtime: (c: TargetContext) => string[]): TargetSpec {
  return {
    id, label, role: "proxy",
    command: (c) => [...runtime(c), `${c.root}/bin/etcd-edge.js`, "start", `--endpoints=${c.etcdEndpoint}`, `--listen-addr=${c.listen}`],
    supports: () => RUN,
  };
}

export const TARGETS: TargetSpec[] = [
  {
    id: "etcd", label: "etcd direct", role: "etcd",
    supports: (w) => (isWebOrConnect(w) ? na("etcd speaks gRPC only") : w.startsWith("memory-") ? na("no proxy process") : RUN),
  },
  {
    id: "grpc-proxy", label: "etcd grpc-proxy", role: "proxy",
    command: (c) => ["etcd", "grpc-proxy", "start", `--endpoints=${c.etcdEndpoint}`, `--listen-addr=${c.listen}`, `--data-dir=${c.dataDir}`],
    supports: (w) => (isWebOrConnect(w) ? na("grpc-proxy speaks gRPC only") : w === "json-gateway" ? na("grpc-proxy has no JSON gateway (/v3/* is 404)") : RUN),
  },
  edge("edge-node", "etcd-edge (Node)", () => [process.execPath]),
  // deno and bun are the npm packages' binaries (node_modules/.bin, on PATH under `npm run`).
  edge("edge-deno", "etcd-edge (Deno)", () => ["deno", "run", "-A"]),
  edge("edge-bun", "etcd-edge (Bun)", () => ["bun"]),
  {
    id: "passthrough", label: "HTTP/2 pass-through (ceiling)", role: "ceiling",
    command: (c) => [process.execPath, `${c.buildDir}/passthrough.mjs`, `--listen=${c.listen}`, `--etcd=${c.etcdUrl}`],
    supports: (w) => (GRPC_ONLY.includes(w) || w.startsWith("memory-") ? RUN : na("pipes gRPC to etcd, which speaks gRPC only")),
  },
  {
    id: "static", label: "static responder (ceiling)", role: "ceiling",
    command: (c) => [process.execPath, `${c.buildDir}/static-range.mjs`, `--listen=${c.listen}`, `--etcd=${c.etcdUrl}`],
    supports: (w) => (w === "range-serializable" || w === "proto-grpc" || w === "memory-idle" ? RUN : na("answers KV.Range from memory only")),
  },
];
