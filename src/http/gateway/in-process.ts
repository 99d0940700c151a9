/**
 * The gateway's ways into the RPC handlers, so a JSON request goes through exactly the handlers (and the
 * coalescing and caching behind them) that a gRPC client reaches, with no socket in between: unary calls
 * call the implementation directly (services/unary-methods.ts, as the lean listener path does); streams
 * go through a Connect transport on our own router.
 */
import { toBinary, type DescMethod, type DescMethodUnary, type DescService, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, createRouterTransport, type ConnectRouter, type Transport } from "@connectrpc/connect";
import type { UnaryMethod } from "../../services/unary-methods.js";
import { messageTooLarge } from "../../upstream/grpc-frame.js";
import type { CallMetadata } from "./metadata.js";

export type Routes = (router: ConnectRouter) => void;

/**
 * Runs `routes` once and returns a routes function that registers those very implementations on every
 * router it is given. The RPC listener and the gateway each build a router; with this they share one set
 * of service objects, so per-service state (watch and lease hubs, caches) is never built twice.
 */
export function sharedRoutes(routes: Routes): Routes {
  const calls: ((router: ConnectRouter) => void)[] = [];
  const recorder: ConnectRouter = {
    handlers: [],
    service(service: DescService, impl: object, options?: object) {
      calls.push((r) => r.service(service, impl, options));
      return this;
    },
    rpc(method: DescMethod, impl: unknown, options?: object) {
      calls.push((r) => (r.rpc as (m: DescMethod, i: unknown, o?: object) => unknown)(method, impl, options));
      return this;
    },
  };
  routes(recorder);
  return (router) => {
    for (const register of calls) register(router);
  };
}

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

/**
 * A unary call straight into the implementation. What the in-process transport did for it is done here:
 * the request message is bounded by --max-send-bytes (ResourceExhausted beyond, connect-es's wording) and
 * the deadline ends the call with DeadlineExceeded even if etcd never answers.
 */
export function directUnary(m: UnaryMethod, maxSendBytes: number): UnaryInvoke {
  return async (input, md, signal) => {
    const size = toBinary(m.input, input).byteLength;
    if (size > maxSendBytes) throw messageTooLarge(size, maxSendBytes);
    const timeoutMs = md.timeoutMs;
    if (timeoutMs === undefined) return m.impl(input, { requestHeader: md.headers, signal, timeoutMs: () => undefined });
    const deadline = Date.now() + timeoutMs;
    const expired = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new ConnectError("the operation timed out", Code.DeadlineExceeded);
        expired.abort(err);
        reject(err);
      }, timeoutMs);
    });
    const ctx = { requestHeader: md.headers, signal: AbortSignal.any([signal, expired.signal]), timeoutMs: () => deadline - Date.now() };
    try {
      return await Promise.race([m.impl(input, ctx), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/** The same call through the in-process transport, for a method with no direct implementation. */
export function transportUnary(method: DescMethodUnary, transport: Transport): UnaryInvoke {
  return async (input, md, signal) => (await transport.unary(method, signal, md.timeoutMs, md.headers, input)).message;
}
