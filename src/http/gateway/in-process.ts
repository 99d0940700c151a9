/**
 * The gateway's way into the RPC handlers: a Connect transport that calls our own router in process, so
 * a JSON request goes through exactly the handlers (and the coalescing and caching behind them) that a
 * gRPC client reaches, with no socket in between.
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { createRouterTransport, type ConnectRouter, type Transport } from "@connectrpc/connect";

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
