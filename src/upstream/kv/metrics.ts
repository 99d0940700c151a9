/** The range cache's and single-flight's metrics: etcd's proxy names where it has them (its dashboards work). */
import type { Metrics } from "../../observe/metrics.js";
import type { CoalescedKv } from "./coalesced-kv.js";

export function registerKvMetrics(metrics: Metrics, kv: CoalescedKv): void {
  metrics.gaugeFrom("etcd_grpc_proxy_cache_hits_total", "Serializable Range requests answered from the cache.", () => kv.cache.hits);
  metrics.gaugeFrom("etcd_grpc_proxy_cache_misses_total", "Serializable Range requests the cache could not answer.", () => kv.cache.misses);
  metrics.gaugeFrom("etcd_grpc_proxy_cache_keys_total", "Entries in the range cache.", () => kv.cache.size);
  metrics.gaugeFrom("etcd_edge_cache_bytes", "Estimated bytes held by the range cache.", () => kv.cache.bytes);
  metrics.gaugeFrom("etcd_edge_cache_max_entries", "Bound: range cache entries (LRU eviction beyond).", () => kv.cache.limits.maxEntries);
  metrics.gaugeFrom("etcd_edge_cache_max_bytes", "Bound: range cache bytes (LRU eviction beyond).", () => kv.cache.limits.maxBytes);
  metrics.gaugeFrom("etcd_edge_cache_enabled", "1 while the invalidation watch is live and the cache serves; 0 while it is bypassed.", () => (kv.cache.isEnabled ? 1 : 0));
  metrics.counterFrom("etcd_edge_singleflight_shared_total", "Range requests answered by a call another request started.", () => kv.flights.shared);
}
