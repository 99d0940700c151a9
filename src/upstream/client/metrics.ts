/** The etcd client's metrics: open upstream streams, which endpoints answer, failovers. */
import type { Metrics } from "../../observe/metrics.js";
import type { Upstream } from "./upstream.js";

export function registerClientMetrics(metrics: Metrics, upstream: Upstream): void {
  metrics.gaugeFrom("etcd_edge_upstream_streams", "Streams open from the proxy to etcd.", () => upstream.openStreams);
  metrics.labelledGaugeFrom("etcd_edge_upstream_endpoint_up", "1 while the endpoint answers, 0 after a call found it unreachable.", "endpoint",
    () => upstream.endpoints.map((e) => [e.url, e.up ? 1 : 0] as [string, number]));
  metrics.counterFrom("etcd_edge_upstream_failovers_total", "Times new calls moved to another endpoint because the one in use was unreachable or stopped answering.",
    () => upstream.failovers);
}
