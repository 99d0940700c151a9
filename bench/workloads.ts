/**
 * The workloads, in the order a repetition runs them (unary first; streams last, because their clean-up,
 * etcd's proxy keeping leases alive after its clients left, could disturb what follows). Each builds the
 * task a generator process runs; `share` splits a closed loop over several generator processes.
 */
import type { Profile } from "./profile.js";
import { BASELINE } from "./targets.js";
import { HOT_KEY, LIST_END, LIST_KEYS, LIST_PREFIX, MANY_KEYS } from "./load/messages.js";
import type { ConnectProtocol, LoopShape, RawRequestKind, Task } from "./load/protocol.js";

export type WorkloadKind = "loop" | "watch" | "lease" | "memory" | "noisy";

/** The cell a row's ratios are computed against: etcd grpc-proxy's figure of the same workload by default. */
export interface Reference {
  /** Another workload's row (default: this one). */
  workload?: string;
  target: string;
  label: string;
}

export const DEFAULT_REFERENCE: Reference = { target: BASELINE, label: "etcd grpc-proxy" };

export interface WorkloadSpec {
  id: string;
  /** Only where grpc-proxy has no figure: gRPC-Web and Connect against etcd-edge's gRPC, the gateway against etcd's. */
  reference?: Reference;
  /** Row title; may say the counts of this profile. */
  title(p: Profile): string;
  kind: WorkloadKind;
  /** Builds the task for one target; undefined for rows derived from other workloads (memory) and etcd-benchmark rows. */
  task?(p: Profile, url: string, etcdUrl: string, share: Share): Task;
  /**
   * Rows driven by etcd's own `benchmark` tool (a Go gRPC client, tools/benchmark): the subcommand and its
   * arguments, without --endpoints/--conns/--clients/--total (the harness adds them: harness/etcd-benchmark.ts).
   */
  etcdBenchmark?: string[];
}

/** This process's part of a closed loop run by `of` processes. */
export interface Share {
  index: number;
  of: number;
}

function split(total: number, share: Share): number {
  return Math.max(1, Math.floor(total / share.of) + (share.index < total % share.of ? 1 : 0));
}

function loopShape(connections: number, concurrency: number, share: Share): LoopShape {
  const mine = split(concurrency, share);
  return { connections: Math.min(split(connections, share), mine), concurrency: mine, slotOffset: share.index * 100_000 };
}

const raw = (id: string, title: string, request: RawRequestKind): WorkloadSpec => ({
  id, kind: "loop", title: () => title,
  task: (p, url, _etcd, share) => ({ kind: "unary-raw", url, request, ...loopShape(p.unary.connections, p.unary.concurrency, share) }),
});

/** A closed loop run by etcd's benchmark tool, `p.unary.concurrency` clients over `p.unary.connections` connections. */
const bench = (id: string, title: string, args: string[]): WorkloadSpec => ({ id, kind: "loop", title: () => `${title} (etcd benchmark ${args.join(" ")})`, etcdBenchmark: args });

const proto = (protocol: ConnectProtocol, name: string): WorkloadSpec => ({
  id: `proto-${protocol}`, kind: "loop", title: () => `Range (serializable) over ${name}, connect-node client`,
  ...(protocol === "grpc" ? {} : { reference: { workload: "proto-grpc", target: "edge-node", label: "etcd-edge's gRPC (proto-grpc)" } }),
  task: (p, url, _etcd, share) => ({ kind: "unary-connect", url, protocol, ...loopShape(p.unary.connections, p.unary.concurrency, share) }),
});

const fmt = (n: number) => n.toLocaleString("en-US");

export const WORKLOADS: WorkloadSpec[] = [
  bench("range-serializable", "Range of a hot key, serializable", ["range", HOT_KEY, "--consistency=s"]),
  bench("range-linearizable", "Range of a hot key, linearizable", ["range", HOT_KEY, "--consistency=l"]),
  bench("list-linearizable", `Range of all ${fmt(LIST_KEYS)} keys under a prefix, linearizable (etcd-edge: --watch-cache-prefix)`, ["range", LIST_PREFIX, LIST_END, "--consistency=l"]),
  raw("range-linearizable-many", `Range, linearizable, of one of ${fmt(MANY_KEYS)} keys picked at random per call (our generator: etcd's benchmark reads one fixed key)`, "range-linearizable-many"),
  bench("put", "Put, 32-byte values over 1,024 keys", ["put", "--key-size=8", "--val-size=32", "--key-space-size=1024"]),
  raw("txn-cas", "Txn compare-and-swap (value = v1 ? put : get)", "txn-cas"),
  bench("txn-put", "Txn of one Put, 32-byte values over 1,024 keys", ["txn-put", "--key-size=8", "--val-size=32", "--key-space-size=1024", "--txn-ops=1"]),
  proto("grpc", "gRPC"),
  proto("grpc-web", "gRPC-Web"),
  proto("connect-binary", "Connect (binary)"),
  proto("connect-json", "Connect (JSON)"),
  ...([true, false] as const).map((serializable): WorkloadSpec => ({
    id: serializable ? "json-gateway" : "json-gateway-linearizable", kind: "loop",
    title: () => serializable
      ? "Range (serializable) via the JSON gateway, POST /v3/kv/range over HTTP/1.1 (etcd-edge answers it from its cache, etcd's gateway forwards it)"
      : "Range (linearizable, the JSON default) via the JSON gateway, POST /v3/kv/range over HTTP/1.1 (both forward it to etcd)",
    reference: { target: "etcd", label: "etcd's own gateway" },
    task: (p, url, _etcd, share) => ({ kind: "unary-gateway", url, serializable, ...loopShape(p.gateway.sockets, p.gateway.sockets, share) }),
  })),
  ...(["small", "large"] as const).map((size): WorkloadSpec => ({
    id: size === "small" ? "watch-1k" : "watch-10k",
    kind: "watch",
    title: (p) => `Watch fan-out: ${fmt(p.watch[size])} watchers on one key over ${p.watch.connections} connections, ${p.watch.puts} puts`,
    task: (p, url, etcdUrl) => ({
      kind: "watch-fanout", url, etcdUrl, watchers: p.watch[size], connections: p.watch.connections, puts: p.watch.puts,
      deliveryTimeoutMs: p.watch.deliveryTimeoutMs, setupTimeoutMs: p.watch.setupTimeoutMs,
    }),
  })),
  {
    id: "watch-history", kind: "watch",
    title: (p) => `Watch history: ${fmt(p.history.watchers)} watchers over ${p.watch.connections} connections, each from a different one of the last ${fmt(p.history.watchers)} revisions of a prefix (etcd-edge: --watch-cache-prefix)`,
    task: (p, url, etcdUrl) => ({ kind: "watch-history", url, etcdUrl, watchers: p.history.watchers, connections: p.watch.connections, setupTimeoutMs: p.watch.setupTimeoutMs }),
  },
  {
    id: "lease-keepalive", kind: "lease",
    title: (p) => `Lease keep-alive: ${fmt(p.lease.streams)} streams over ${p.lease.connections} connections, ${p.lease.rounds} keep-alives each`,
    task: (p, url, etcdUrl) => ({ kind: "lease-streams", url, etcdUrl, ...p.lease }),
  },
  {
    id: "lease-oneshot", kind: "loop", title: () => "One-shot keep-alives (open stream, one keep-alive, cancel)",
    task: (p, url, etcdUrl, share) => ({
      kind: "lease-oneshot", url, etcdUrl, timeoutMs: p.oneshot.timeoutMs, ttlSeconds: p.oneshot.ttlSeconds,
      ...loopShape(p.oneshot.connections, p.oneshot.concurrency, share),
    }),
  },
  {
    id: "noisy-neighbour", kind: "noisy",
    title: (p) => `Noisy neighbour: 200 linearizable Ranges of 10,000 keys in flight from one client (127.0.0.2) beside 100 small linearizable reads a second from another (127.0.0.1), ${fmt(p.durationMs / 1000)} s each alone and with the noise; the quiet client's p99 (etcd-edge: --fairness in its own column)`,
    task: (p, url, etcdUrl) => ({ kind: "noisy-neighbour", url, etcdUrl, noisy: 200, phaseMs: p.durationMs, warmupMs: p.warmupMs }),
  },
  { id: "memory-idle", kind: "memory", title: () => "Proxy RSS, idle (fresh process, before the first repetition)" },
  { id: "memory-watchers", kind: "memory", title: (p) => `Proxy RSS with ${fmt(p.watch.large)} watchers (from watch-10k)` },
  { id: "memory-leases", kind: "memory", title: (p) => `Proxy RSS with ${fmt(p.lease.streams)} keep-alive streams (from lease-keepalive)` },
];

export const WORKLOAD_IDS = WORKLOADS.map((w) => w.id);

/**
 * Rows added after test/e2e/bench-quick.test.ts was written: that test asserts results.json holds exactly
 * its list, so `--quick` leaves these out unless --workloads names them. Once the test lists them, drop
 * this exclusion (profile.ts).
 */
export const ROWS_NOT_IN_QUICK = ["range-linearizable-many", "txn-put", "json-gateway-linearizable", "list-linearizable", "watch-history", "noisy-neighbour"];
