/** The keep-alive hub's metrics, with its bound. */
import type { Metrics } from "../../observe/metrics.js";
import type { LeaseHub } from "./lease-hub.js";

export function registerLeaseMetrics(metrics: Metrics, leases: LeaseHub): void {
  metrics.gaugeFrom("etcd_edge_lease_keepalive_client_streams", "Client LeaseKeepAlive streams open on the proxy.", () => leases.clientStreams);
  metrics.gaugeFrom("etcd_edge_lease_keepalive_upstream_streams", "LeaseKeepAlive streams open from the proxy to etcd (0 or 1).", () => leases.upstreamStreams);
  metrics.gaugeFrom("etcd_edge_lease_keepalive_waiting", "Client keep-alives waiting for etcd's reply.", () => leases.waiting);
  metrics.gaugeFrom("etcd_edge_lease_keepalive_max_waiting", "Bound: waiting keep-alives (the stream that exceeds it ends ResourceExhausted).", () => leases.options.maxWaiters);
}
