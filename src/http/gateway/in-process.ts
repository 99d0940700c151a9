/**
 * The gateway's ways into the RPC handlers, so a JSON request goes through exactly the handlers (and the
 * coalescing and caching behind them) that a gRPC client reaches, with no socket in between: unary calls
 * go through the services' one invoke (services/invoke.ts, as the fast paths do); streams through a
 * Connect transport on the services' registry.
 */
import type { DescMethodUnary, Message } from "@bufbuild/protobuf";
import { createRouterTransport, type Transport } from "@connectrpc/connect";
import { invoke } from "../../services/invoke.js";
import type { Routes, UnaryMethod } from "../../services/registry.js";
import type { CallMetadata } from "./metadata.js";

/**
 * The in-process transport. `maxSendBytes` bounds each request message as the RPC listener bounds a gRPC
 * client's (ResourceExhausted beyond it); responses are bounded upstream by --max-recv-bytes already.
 */
export function inProcessTransport(routes: Routes, maxSendBytes: number): Transport {
  return createRouterTransport(routes, {
    router: { readMaxBytes: maxSendBytes },
    // No compression between two ends of one process.
    transport: { sendCompression: null, acceptCompression: [] },
  });
}

/** One unary call with the gateway's metadata and the HTTP request's abort signal. */
export type UnaryInvoke = (input: Message, md: CallMetadata, signal: AbortSignal) => Promise<Message>;

/** A unary call straight into the implementation. */
export function directUnary(m: UnaryMethod, maxSendBytes: number): UnaryInvoke {
  return (input, md, signal) => invoke(m, input, { requestHeader: md.headers, timeoutMs: md.timeoutMs, maxSendBytes, signal, peer: md.peer });
}

/** The same call through the in-process transport, for a method with no direct implementation. */
export function transportUnary(method: DescMethodUnary, transport: Transport): UnaryInvoke {
  return async (input, md, signal) => (await transport.unary(method, signal, md.timeoutMs, md.headers, input)).message;
}
