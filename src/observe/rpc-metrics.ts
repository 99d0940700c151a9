/**
 * RPC metrics: every RPC counted by service, method, type and protocol, timed, and its open streams
 * tracked, whichever path served it (the fast paths and connect-es's handlers report the same series).
 * For streams the end is when the response stream ends, not when the handler returns.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Metrics } from "./metrics.js";

/** The RPC protocols the listener serves; listener/protocol.ts tells them apart. */
export type Protocol = "grpc" | "grpc-web" | "connect";

export type RpcType = "unary" | "server_stream" | "client_stream" | "bidi_stream";

export interface RpcLabels {
  grpc_type: RpcType;
  grpc_service: string;
  grpc_method: string;
}

/** One RPC in one protocol, its series looked up once: label hashing per call was a measurable share of a cache hit. */
export interface RpcSeries {
  started: { inc(): void };
  ok: { inc(): void };
  seconds: { observe(v: number): void };
  /** The count of calls that ended with `code` (not OK). */
  failed(code: Code): void;
  streamOpened(): void;
  streamClosed(): void;
}

export function rpcSeries(m: Metrics, rpc: RpcLabels, protocol: Protocol): RpcSeries {
  const labels = { ...rpc, protocol };
  const streamLabels = { grpc_service: rpc.grpc_service, grpc_method: rpc.grpc_method, protocol };
  return {
    started: m.started.labels(labels),
    ok: m.handled.labels({ ...labels, grpc_code: "OK" }),
    seconds: m.handlingSeconds.labels(labels),
    failed: (code) => m.handled.inc({ ...labels, grpc_code: Code[code] }),
    streamOpened: () => m.openStreams.inc(streamLabels),
    streamClosed: () => m.openStreams.dec(streamLabels),
  };
}

/** rpcSeries, kept per (key, protocol): the fast paths look a method's series up once. */
export function seriesCache(m: Metrics): (key: object, rpc: RpcLabels, protocol: Protocol) => RpcSeries {
  const cache = new WeakMap<object, Map<Protocol, RpcSeries>>();
  return (key, rpc, protocol) => {
    let byProtocol = cache.get(key);
    if (!byProtocol) cache.set(key, (byProtocol = new Map()));
    let s = byProtocol.get(protocol);
    if (!s) byProtocol.set(protocol, (s = rpcSeries(m, rpc, protocol)));
    return s;
  };
}

const TYPES = { unary: "unary", server_streaming: "server_stream", client_streaming: "client_stream", bidi_streaming: "bidi_stream" } as const;

/** The same series for connect-es's handlers; `protocolOf` reads a request's protocol (listener/protocol.ts). */
export function metricsInterceptor(m: Metrics, protocolOf: (contentType: string | null) => Protocol): Interceptor {
  return (next) => async (req) => {
    const s = rpcSeries(m, { grpc_type: TYPES[req.method.methodKind], grpc_service: req.service.typeName, grpc_method: req.method.name }, protocolOf(req.header.get("content-type")));
    s.started.inc();
    const started = performance.now();
    const done = (err: unknown) => {
      s.seconds.observe((performance.now() - started) / 1000);
      if (err === undefined) s.ok.inc();
      else s.failed(ConnectError.from(err).code);
    };
    let res;
    try {
      res = await next(req);
    } catch (err) {
      done(err);
      throw err;
    }
    if (!res.stream) {
      done(undefined);
      return res;
    }
    s.streamOpened();
    const inner = res.message;
    return {
      ...res,
      message: (async function* () {
        let failure: unknown;
        try {
          yield* inner;
        } catch (err) {
          failure = err ?? new Error("stream failed");
          throw err;
        } finally {
          s.streamClosed();
          done(failure);
        }
      })(),
    };
  };
}
