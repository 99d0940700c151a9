/**
 * What the orchestrator (bench/run.ts) and a generator process (bench/load/generator.ts) say to each other
 * over the IPC channel. Sequence: task → ready → go → end → finish → result; a workload may also ask for
 * sample → sampled at any point (a fan-out is measured once it is set up). The orchestrator takes the
 * target's CPU between go and end (closed loops: the window's absolute times) and its RSS throughout.
 */

export type RawRequestKind = "range-serializable" | "range-linearizable" | "range-linearizable-many" | "put" | "txn-cas";
export type ConnectProtocol = "grpc" | "grpc-web" | "connect-binary" | "connect-json";

/** A closed loop: `concurrency` calls in flight over `connections` HTTP/2 connections (or sockets). */
export interface LoopShape {
  connections: number;
  concurrency: number;
  /** First slot number of this process (several processes share a workload): keeps Txn keys distinct. */
  slotOffset: number;
}

export type Task =
  | ({ kind: "unary-raw"; url: string; request: RawRequestKind } & LoopShape)
  | ({ kind: "unary-connect"; url: string; protocol: ConnectProtocol } & LoopShape)
  | ({ kind: "unary-gateway"; url: string; serializable: boolean } & LoopShape)
  | { kind: "watch-fanout"; url: string; etcdUrl: string; watchers: number; connections: number; puts: number; deliveryTimeoutMs: number; setupTimeoutMs: number }
  | { kind: "watch-history"; url: string; etcdUrl: string; watchers: number; connections: number; setupTimeoutMs: number }
  | { kind: "lease-streams"; url: string; etcdUrl: string; streams: number; connections: number; rounds: number; spreadMs: number; gapMs: number; timeoutMs: number; ttlSeconds: number; setupTimeoutMs: number }
  | ({ kind: "lease-oneshot"; url: string; etcdUrl: string; timeoutMs: number; ttlSeconds: number } & LoopShape)
  | { kind: "noisy-neighbour"; url: string; etcdUrl: string; noisy: number; phaseMs: number; warmupMs: number };

/** The measured window of a closed loop, as absolute Date.now() times shared by every generator process. */
export interface Window {
  startAt: number;
  endAt: number;
}

export interface GenResult {
  /** Successful units in the window: calls, deliveries to watchers, keep-alive replies. */
  units: number;
  errors: number;
  firstError?: string;
  /** Latency of every successful unit in the window, in ms. */
  latenciesMs: Float64Array;
  /** Length of the measured window. */
  seconds: number;
  /** CPU the generator process used in the window (user + system). */
  cpuMs: number;
  /** Workload-specific counts: missing deliveries, timeouts, ... */
  extra: Record<string, number>;
}

export type ToGenerator =
  | { type: "task"; task: Task }
  | { type: "go"; window?: Window }
  | { type: "sampled" }
  | { type: "finish" };

export type FromGenerator =
  | { type: "ready" }
  | { type: "sample" }
  | { type: "end" }
  | { type: "result"; result: GenResult }
  | { type: "failed"; error: string };
