/** The watch hub's metrics: etcd's proxy names for coalescing (its dashboards work), ours for the rest. */
import type { Metrics } from "../../observe/metrics.js";
import type { WatchHub } from "./watch-hub.js";
import { WATCH_BUFFER_BYTES, WATCH_BUFFER_RESPONSES } from "./watch-stream.js";

export function registerWatchMetrics(metrics: Metrics, watches: WatchHub): void {
  metrics.gaugeFrom("etcd_grpc_proxy_watchers_coalescing_total", "Client watchers sharing an upstream watch with others (sum of receivers - 1).", () => watches.stats().coalescedWatchers);
  metrics.counterFrom("etcd_grpc_proxy_events_coalescing_total", "Upstream watch responses fanned out to more than one client watcher (+ receivers - 1 each).", () => watches.eventsCoalesced);
  metrics.gaugeFrom("etcd_edge_upstream_watchers", "Watches open from the proxy to etcd (s-watchers).", () => watches.stats().upstreamWatchers);
  metrics.gaugeFrom("etcd_edge_client_watchers", "Client watchers open on the proxy (c-watchers).", () => watches.stats().clientWatchers);
  metrics.gaugeFrom("etcd_edge_watch_buffered_responses", "Watch responses waiting in client buffers.", () => watches.stats().bufferedResponses);
  metrics.gaugeFrom("etcd_edge_watch_buffer_max_responses", "Bound: watch responses buffered per client stream (full: the watcher is parked).", () => WATCH_BUFFER_RESPONSES);
  metrics.gaugeFrom("etcd_edge_watch_buffer_max_bytes", "Bound: watch response bytes buffered per client stream (full: the watcher is parked).", () => WATCH_BUFFER_BYTES);
  metrics.gaugeFrom("etcd_edge_watch_parked_watchers", "Client watchers parked because their client stopped reading.", () => watches.stats().parkedWatchers);
}
