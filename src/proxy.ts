/**
 * Composition only: builds the parts from the options (upstream → services → HTTP app → listener), each
 * part registering its own metrics, and listens. main.ts calls this; it never exits the process.
 */
import { getRequestListener } from "@hono/node-server";
import type { ProxyOptions } from "./config/options.js";
import { loadListenerTls, loadUpstreamTls } from "./config/tls-files.js";
import { liveUpstreamTls, watchListenerTls } from "./config/tls-reload.js";
import { createApp } from "./http/app.js";
import { loadUiBundle } from "./http/ui.js";
import { dispatch } from "./listener/route.js";
import { listen, type Listener, type RequestHandler } from "./listener/server.js";
import { createLogger, type Logger } from "./observe/log.js";
import { Metrics } from "./observe/metrics.js";
import { runtime } from "./runtime/runtime.js";
import { Draining } from "./services/draining.js";
import { UnaryCall } from "./services/invoke.js";
import { charger } from "./services/seats.js";
import { etcdServices } from "./services/routes.js";
import { discoverEndpoints } from "./upstream/client/discovery.js";
import { EndpointSync } from "./upstream/client/endpoint-sync.js";
import { Admission } from "./upstream/client/fairness.js";
import { registerFairnessMetrics } from "./upstream/client/fairness-metrics.js";
import { registerClientMetrics } from "./upstream/client/metrics.js";
import { RegisteredProxies } from "./upstream/client/registered-proxies.js";
import { Registration } from "./upstream/client/registration.js";
import { Upstream, type Endpoint } from "./upstream/client/upstream.js";
import { registerWatchCacheMetrics } from "./upstream/cache/metrics.js";
import { WatchCache } from "./upstream/cache/watch-cache.js";
import { CoalescedKv } from "./upstream/kv/coalesced-kv.js";
import { registerKvMetrics } from "./upstream/kv/metrics.js";
import { LeaseHub } from "./upstream/lease/lease-hub.js";
import { registerLeaseMetrics } from "./upstream/lease/metrics.js";
import { registerWatchMetrics } from "./upstream/watch/metrics.js";
import { WatchHub } from "./upstream/watch/watch-hub.js";

export interface Proxy {
  listener: Listener;
  upstream: Upstream;
  metrics: Metrics;
  /** "http" or "https": what clients dial. */
  scheme: "http" | "https";
  /** --metrics-addr's listener (/metrics and /health only), when given. */
  metricsListener: Listener | undefined;
  /**
   * Shuts down: deregisters, stops accepting, ends every stream with Unavailable, lets unary calls in flight
   * finish for up to `graceMs` in all, then closes whatever is still open. 0: closes at once.
   */
  close(graceMs?: number): Promise<void>;
}

export async function startProxy(o: ProxyOptions, log: Logger = createLogger({ debug: o.debug })): Promise<Proxy> {
  const endpoints = await etcdEndpoints(o, log);
  const wantsUpstreamTls = endpoints.some((e) => e.tls);
  // Read again by each new session to etcd when --cert, --key or --cacert changed (tls-reload.ts).
  const upstreamTls = wantsUpstreamTls ? liveUpstreamTls(o.upstreamTls, await loadUpstreamTls(o.upstreamTls), (line) => log.warn(line)) : undefined;
  const listenerTls = await loadListenerTls(o.listenerTls, o.dataDir, (line) => log.warn(line));
  // --ui: the bundle is read before listening, so a missing build fails the start, not the first visit.
  const uiBundle = o.ui ? await loadUiBundle() : undefined;

  const metrics = new Metrics();
  // --fairness: unary calls are charged to their caller's flow (services/seats.ts) and wait for seats
  // toward etcd in Upstream.unary (upstream/client/fairness.ts). Off: the hook stays unset, nothing is charged.
  const admission = o.fairness ? new Admission(o.fairness) : undefined;
  UnaryCall.charge = o.fairness ? charger(o.fairness.flowBy) : undefined;
  if (admission) registerFairnessMetrics(metrics, admission);
  const upstream = new Upstream({
    endpoints,
    tls: upstreamTls,
    maxSendBytes: o.maxSendBytes,
    maxRecvBytes: o.maxRecvBytes,
    keepAliveTimeMs: o.dialKeepAliveTimeMs,
    keepAliveTimeoutMs: o.dialKeepAliveTimeoutMs,
    // Below the cache and the hubs: they see clients' keys, etcd sees the prefixed ones.
    ...(o.namespace ? { namespace: new TextEncoder().encode(o.namespace) } : {}),
    ...(admission ? { admission } : {}),
  });
  // --watch-cache-prefix: below the range cache and the watch hub, which answer from it where they can.
  const enc = new TextEncoder();
  const watchCache = o.watchCache.prefixes.length > 0
    ? new WatchCache(upstream, o.watchCache.prefixes.map((p) => enc.encode(p)), { maxEvents: o.watchCache.maxEvents, maxAgeMs: o.watchCache.maxAgeMs, progressNotifyMs: o.watchCache.progressNotifyMs }, log)
    : undefined;
  watchCache?.start();
  const kv = new CoalescedKv(upstream, watchCache ? { watchCache } : {});
  const leases = new LeaseHub(upstream);
  const watches = new WatchHub(upstream, watchCache);
  registerClientMetrics(metrics, upstream);
  registerKvMetrics(metrics, kv);
  registerLeaseMetrics(metrics, leases);
  registerWatchMetrics(metrics, watches);
  if (watchCache) registerWatchCacheMetrics(metrics, watchCache);

  const hostname = runtime.hostname();
  const registration = o.resolverPrefix
    ? new Registration(upstream, { prefix: o.resolverPrefix, addr: o.advertiseClientUrl, ttlSec: o.resolverTtlSec, hostname, log })
    : undefined;
  const registered = o.resolverPrefix && o.advertiseClientUrl ? new RegisteredProxies(upstream, o.resolverPrefix, log) : undefined;
  const sync = o.endpointsAutoSyncIntervalMs > 0 ? new EndpointSync(upstream, { intervalMs: o.endpointsAutoSyncIntervalMs, log }) : undefined;

  // Ends every service's open streams with Unavailable when close() begins.
  const draining = new Draining();
  const services = etcdServices(upstream, { advertiseClientUrl: o.advertiseClientUrl, hostname, ...(registered ? { registered } : {}) }, { kv, leases, watches }, draining);
  const app = createApp(() => upstream.check(), metrics, log, { uiBundle, gateway: { routes: services.routes, unary: services.unary, maxSendBytes: o.maxSendBytes } });
  const { handler, streams } = dispatch({
    unary: services.unary,
    bidi: services.bidi,
    routes: services.routes,
    app: getRequestListener(app.fetch) as RequestHandler,
    readMaxBytes: o.maxSendBytes,
    corsAllowedOrigins: o.corsAllowedOrigins,
    metrics,
    log,
  });
  const listener = await listen({
    host: o.listenHost, port: o.listenPort, tls: listenerTls, maxConcurrentStreams: o.maxConcurrentStreams, handler, streams,
    ...(o.grpcKeepAliveIntervalMs > 0 && o.grpcKeepAliveTimeoutMs > 0 ? { keepAlive: { intervalMs: o.grpcKeepAliveIntervalMs, timeoutMs: o.grpcKeepAliveTimeoutMs } } : {}),
    log: (msg) => log.warn(msg),
  });
  // --metrics-addr: as etcd's proxy, a listener of its own with /metrics and /health only (no RPCs, no
  // gateway, no UI), over HTTP/1.1 and HTTP/2; https with the listener's TLS, client certificates included.
  const metricsListener = o.metricsListener ? await listen({
    host: o.metricsListener.host, port: o.metricsListener.port,
    tls: o.metricsListener.scheme === "https" ? listenerTls : undefined,
    maxConcurrentStreams: o.maxConcurrentStreams,
    handler: getRequestListener(createApp(() => upstream.check(), metrics, log).fetch) as RequestHandler,
    log: (msg) => log.warn(msg),
  }).catch(async (err: unknown) => {
    await listener.close();
    throw err;
  }) : undefined;
  // --cert-file, --key-file, --trusted-ca-file changed: new connections on both listeners get the new files.
  const stopTlsReload = listenerTls ? watchListenerTls(o.listenerTls, listenerTls, (tls) => {
    listener.setTls(tls);
    if (o.metricsListener?.scheme === "https") metricsListener?.setTls(tls);
  }, (line) => log.warn(line)) : undefined;
  // Registered once listening: a client sent here by the registration finds the port open.
  registration?.start();
  registered?.start();
  sync?.start();
  return {
    listener,
    upstream,
    metrics,
    scheme: listenerTls ? "https" : "http",
    metricsListener,
    async close(graceMs = 0) {
      const deadline = Date.now() + graceMs;
      // First: the registration's key goes, so no new client is sent to a proxy that is going away.
      await registration?.close();
      registered?.close();
      sync?.close();
      stopTlsReload?.();
      // Then the drain: no new connection, every stream ends with Unavailable (clients retry elsewhere),
      // unary calls in flight finish; whatever is still open at the deadline is cut.
      draining.begin();
      listener.stopAccepting();
      await Promise.all([metricsListener?.close(), until(listener.idle(), deadline)]);
      await listener.close();
      kv.close();
      leases.close();
      watches.close();
      watchCache?.close();
      upstream.close();
    },
  };
}

/**
 * --discovery-srv's endpoints when DNS names any (usable ones: see discovery.ts), else --endpoints, as etcd's
 * proxy chooses. A failed lookup of both SRV names fails the start, as in etcd.
 */
async function etcdEndpoints(o: ProxyOptions, log: Logger): Promise<Endpoint[]> {
  if (!o.discovery) return o.endpoints;
  const found = await discoverEndpoints(o.discovery);
  if (found.length === 0) {
    log.warn({ domain: o.discovery.domain, endpoints: o.endpoints.map((e) => e.url) }, "no usable endpoint from DNS SRV discovery; using --endpoints");
    return o.endpoints;
  }
  log.info({ domain: o.discovery.domain, endpoints: found.map((e) => e.url) }, "discovered the cluster from DNS SRV records");
  return found;
}

/** `done`, or `deadline` (a Date.now() time), whichever comes first. */
function until(done: Promise<void>, deadline: number): Promise<void> {
  const ms = deadline - Date.now();
  if (ms <= 0) return Promise.resolve();
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([done, new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); })]).finally(() => clearTimeout(timer));
}
