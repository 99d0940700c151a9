/**
 * Builds the proxy from its options: upstream → services and HTTP app → one listener. main.ts and the
 * tests call this; it never exits the process.
 */
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type * as http2 from "node:http2";
import { getRequestListener } from "@hono/node-server";
import type { ProxyOptions } from "./config/options.js";
import { loadListenerTls, loadUpstreamTls } from "./config/tls-files.js";
import { createApp } from "./http/app.js";
import { sharedRoutes } from "./http/gateway/in-process.js";
import { loadUiBundle } from "./http/ui.js";
import { withCors } from "./listener/cors.js";
import { listen, type Listener, type RequestHandler } from "./listener/server.js";
import { route } from "./listener/route.js";
import { leanGrpcStream, leanUnary } from "./listener/unary.js";
import { metricsInterceptor } from "./observe/interceptor.js";
import { Metrics } from "./observe/metrics.js";
import { runtime } from "./runtime/runtime.js";
import { undecodableIsInvalidArgument } from "./services/decode-errors.js";
import { leanLeaseKeepAlive } from "./services/lease.js";
import { ETCD_SERVICES, routes } from "./services/routes.js";
import { unaryMethods } from "./services/unary-methods.js";
import { leanWatch } from "./services/watch.js";
import { CoalescedKv } from "./upstream/coalesced-kv.js";
import { LeaseHub } from "./upstream/lease-hub.js";
import { Upstream } from "./upstream/upstream.js";
import { WatchHub } from "./upstream/watch-hub.js";
import { WATCH_BUFFER_BYTES, WATCH_BUFFER_RESPONSES } from "./upstream/watch-stream.js";

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
  const kv = new CoalescedKv(upstream);
  const leases = new LeaseHub(upstream);
  const watches = new WatchHub(upstream);
  // Watch coalescing: etcd's proxy names for the first two, so its dashboards work.
  metrics.gaugeFrom("etcd_grpc_proxy_watchers_coalescing_total", "Client watchers sharing an upstream watch with others (sum of receivers - 1).", () => watches.stats().coalescedWatchers);
  metrics.counterFrom("etcd_grpc_proxy_events_coalescing_total", "Upstream watch responses fanned out to more than one client watcher (+ receivers - 1 each).", () => watches.eventsCoalesced);
  metrics.gaugeFrom("etcd_edge_upstream_watchers", "Watches open from the proxy to etcd (s-watchers).", () => watches.stats().upstreamWatchers);
  metrics.gaugeFrom("etcd_edge_client_watchers", "Client watchers open on the proxy (c-watchers).", () => watches.stats().clientWatchers);
  metrics.gaugeFrom("etcd_edge_watch_buffered_responses", "Watch responses waiting in client buffers.", () => watches.stats().bufferedResponses);
  metrics.gaugeFrom("etcd_edge_watch_buffer_max_responses", "Bound: watch responses buffered per client stream (full: the watcher is parked).", () => WATCH_BUFFER_RESPONSES);
  metrics.gaugeFrom("etcd_edge_watch_buffer_max_bytes", "Bound: watch response bytes buffered per client stream (full: the watcher is parked).", () => WATCH_BUFFER_BYTES);
  metrics.gaugeFrom("etcd_edge_watch_parked_watchers", "Client watchers parked because their client stopped reading.", () => watches.stats().parkedWatchers);
  // Range cache and keep-alive metrics: etcd's proxy names where it has them, so its dashboards work.
  metrics.gaugeFrom("etcd_grpc_proxy_cache_hits_total", "Serializable Range requests answered from the cache.", () => kv.cache.hits);
  metrics.gaugeFrom("etcd_grpc_proxy_cache_misses_total", "Serializable Range requests the cache could not answer.", () => kv.cache.misses);
  metrics.gaugeFrom("etcd_grpc_proxy_cache_keys_total", "Entries in the range cache.", () => kv.cache.size);
  metrics.gaugeFrom("etcd_edge_cache_bytes", "Estimated bytes held by the range cache.", () => kv.cache.bytes);
  metrics.gaugeFrom("etcd_edge_cache_max_entries", "Bound: range cache entries (LRU eviction beyond).", () => kv.cache.limits.maxEntries);
  metrics.gaugeFrom("etcd_edge_cache_max_bytes", "Bound: range cache bytes (LRU eviction beyond).", () => kv.cache.limits.maxBytes);
  metrics.gaugeFrom("etcd_edge_cache_enabled", "1 while the invalidation watch is live and the cache serves; 0 while it is bypassed.", () => (kv.cache.isEnabled ? 1 : 0));
  metrics.counterFrom("etcd_edge_singleflight_shared_total", "Range requests answered by a call another request started.", () => kv.flights.shared);
  metrics.gaugeFrom("etcd_edge_lease_keepalive_client_streams", "Client LeaseKeepAlive streams open on the proxy.", () => leases.clientStreams);
  metrics.gaugeFrom("etcd_edge_lease_keepalive_upstream_streams", "LeaseKeepAlive streams open from the proxy to etcd (0 or 1).", () => leases.upstreamStreams);
  metrics.gaugeFrom("etcd_edge_lease_keepalive_waiting", "Client keep-alives waiting for etcd's reply.", () => leases.waiting);
  metrics.gaugeFrom("etcd_edge_lease_keepalive_max_waiting", "Bound: waiting keep-alives (the stream that exceeds it ends ResourceExhausted).", () => leases.options.maxWaiters);
  metrics.gaugeFrom("etcd_edge_upstream_streams", "Streams open from the proxy to etcd.", () => upstream.openStreams);
  metrics.labelledGaugeFrom("etcd_edge_upstream_endpoint_up", "1 while the endpoint answers, 0 after a call found it unreachable.", "endpoint",
    () => upstream.endpoints.map((e) => [e.url, e.up ? 1 : 0] as [string, number]));
  // One set of service objects behind both doors: the RPC listener and the JSON gateway's in-process client.
  const etcdRoutes = sharedRoutes(routes(upstream, { advertiseClientUrl: o.advertiseClientUrl, hostname: runtime.hostname() }, { kv, leases, watches }));
  const rpc = (fallback: RequestHandler) => connectNodeAdapter({
    routes: etcdRoutes,
    fallback: fallback as Parameters<typeof connectNodeAdapter>[0]["fallback"],
    interceptors: [metricsInterceptor(metrics)],
    // An undecodable protobuf body is the client's InvalidArgument, not our Internal (decode-errors.ts).
    requestGate: undecodableIsInvalidArgument,
    // One limit for what a client may send, the same that bounds what we send to etcd: no hidden 4 MiB.
    readMaxBytes: o.maxSendBytes,
    // Unknown JSON fields are ignored, as etcd's gateway does, so newer clients keep working.
    jsonOptions: { ignoreUnknownFields: true },
  }) as RequestHandler;
  // --ui: the bundle is read before listening, so a missing build fails the start, not the first visit.
  const uiBundle = o.ui ? await loadUiBundle() : undefined;
  // Unary calls in every protocol, and native gRPC's Watch and LeaseKeepAlive, skip connect-es's generic
  // machinery (measured hot paths); so do the JSON gateway's unary calls.
  const unaryImpls = unaryMethods(etcdRoutes, ETCD_SERVICES);
  const app = createApp(upstream, metrics, { uiBundle, gateway: { routes: etcdRoutes, unary: unaryImpls, maxSendBytes: o.maxSendBytes } });
  const unaryOptions = { methods: unaryImpls, readMaxBytes: o.maxSendBytes, metrics };
  const unary = leanUnary(unaryOptions);
  const watch = leanWatch(watches, o.maxSendBytes, metrics);
  const keepAlive = leanLeaseKeepAlive(leases, o.maxSendBytes, metrics);
  const lean = (req: Parameters<typeof unary>[0], res: Parameters<typeof unary>[1]) => unary(req, res) || watch.compat(req, res) || keepAlive.compat(req, res);
  const unaryStream = leanGrpcStream(unaryOptions);
  const streams = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) =>
    unaryStream(stream, headers) || watch.stream(stream, headers) || keepAlive.stream(stream, headers);
  const handler = withCors(o.corsAllowedOrigins, route(rpc, getRequestListener(app.fetch) as RequestHandler, lean));
  const listener = await listen({ host: o.listenHost, port: o.listenPort, tls: listenerTls, maxConcurrentStreams: o.maxConcurrentStreams, handler, streams, log });
  return {
    listener,
    upstream,
    metrics,
    scheme: listenerTls ? "https" : "http",
    async close() {
      await listener.close();
      kv.close();
      leases.close();
      watches.close();
      upstream.close();
    },
  };
}
