/**
 * A server interceptor that counts every RPC by service, method, type and protocol, times it, and tracks
 * open streams. For streams the end is when the response stream ends, not when the handler returns.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Metrics } from "./metrics.js";

export type Protocol = "grpc" | "grpc-web" | "connect";

/** The protocol of a request, from its content type (wire.md §1). Connect GET requests have none. */
export function protocolOf(contentType: string | null): Protocol {
  if (!contentType) return "connect";
  if (contentType.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType.startsWith("application/grpc")) return "grpc";
  return "connect";
}

const TYPES = { unary: "unary", server_streaming: "server_stream", client_streaming: "client_stream", bidi_streaming: "bidi_stream" } as const;

export function metricsInterceptor(m: Metrics): Interceptor {
  return (next) => async (req) => {
    const labels = {
      grpc_type: TYPES[req.method.methodKind],
      grpc_service: req.service.typeName,
      grpc_method: req.method.name,
      protocol: protocolOf(req.header.get("content-type")),
    };
    m.started.inc(labels);
    const end = m.handlingSeconds.startTimer(labels);
    const done = (err: unknown) => {
      end();
      const code = err === undefined ? "OK" : Code[ConnectError.from(err).code];
      m.handled.inc({ ...labels, grpc_code: code });
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
    const streamLabels = { grpc_service: labels.grpc_service, grpc_method: labels.grpc_method, protocol: labels.protocol };
    m.openStreams.inc(streamLabels);
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
          m.openStreams.dec(streamLabels);
          done(failure);
        }
      })(),
    };
  };
}
