/**
 * Builds the proxy from its options: upstream → services and HTTP app → one listener. main.ts and the
 * tests call this; it never exits the process.
 */
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { getRequestListener } from "@hono/node-server";
import type { ProxyOptions } from "./config/options.js";
import { loadListenerTls, loadUpstreamTls } from "./config/tls-files.js";
import { createApp } from "./http/app.js";
import { listen, type Listener, type RequestHandler } from "./listener/server.js";
import { route } from "./listener/route.js";
import { metricsInterceptor } from "./observe/interceptor.js";
import { Metrics } from "./observe/metrics.js";
import { runtime } from "./runtime/runtime.js";
import { routes } from "./services/routes.js";
import { Upstream } from "./upstream/upstream.js";

export interface Proxy {
  listener: Listener;
  upstream: Upstream;
  metrics: Metrics;
  /** "http" or "https": what clients dial. */
  scheme: "http" | "https";
  close(): Promise<void>;
}

export async function startProxy(o: ProxyOptions, log: (msg: string) => void = runtime.stderr): Promise<Proxy> {
  const wantsUpstreamTls = o.endpoints.some((e) => e.tls);
  const upstreamTls = wantsUpstreamTls ? await loadUpstreamTls(o.upstreamTls) : undefined;
  const listenerTls = await loadListenerTls(o.listenerTls, o.dataDir);
  const upstream = new Upstream({
    endpoints: o.endpoints,
    tls: upstreamTls,
    maxSendBytes: o.maxSendBytes,
    maxRecvBytes: o.maxRecvBytes,
    keepAliveTimeMs: o.dialKeepAliveTimeMs,
    keepAliveTimeoutMs: o.dialKeepAliveTimeoutMs,
  });
  const metrics = new Metrics();
  metrics.gaugeFrom("etcd_edge_upstream_streams", "Streams open from the proxy to etcd.", () => upstream.openStreams);
  metrics.labelledGaugeFrom("etcd_edge_upstream_endpoint_up", "1 while the endpoint answers, 0 after a call found it unreachable.", "endpoint",
    () => upstream.endpoints.map((e) => [e.url, e.up ? 1 : 0] as [string, number]));
  const rpc = (fallback: RequestHandler) => connectNodeAdapter({
    routes: routes(upstream, { advertiseClientUrl: o.advertiseClientUrl, hostname: runtime.hostname() }),
    fallback: fallback as Parameters<typeof connectNodeAdapter>[0]["fallback"],
    interceptors: [metricsInterceptor(metrics)],
    // One limit for what a client may send, the same that bounds what we send to etcd: no hidden 4 MiB.
    readMaxBytes: o.maxSendBytes,
    // Unknown JSON fields are ignored, as etcd's gateway does, so newer clients keep working.
    jsonOptions: { ignoreUnknownFields: true },
  }) as RequestHandler;
  const app = createApp(upstream, metrics);
  const handler = route(rpc, getRequestListener(app.fetch) as RequestHandler);
  const listener = await listen({ host: o.listenHost, port: o.listenPort, tls: listenerTls, maxConcurrentStreams: o.maxConcurrentStreams, handler, log });
  return {
    listener,
    upstream,
    metrics,
    scheme: listenerTls ? "https" : "http",
    async close() {
      await listener.close();
      upstream.close();
    },
  };
}
