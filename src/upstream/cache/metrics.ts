/** The watch cache's metrics, per prefix where it says something of one prefix. */
import type { Metrics } from "../../observe/metrics.js";
import type { FallbackReason, ServedKind, WatchCache } from "./watch-cache.js";

export function registerWatchCacheMetrics(metrics: Metrics, cache: WatchCache): void {
  const perPrefix = (read: (i: number) => number) => () => cache.prefixes.map((p, i): [string, number] => [p.iv.start, read(i)]);
  metrics.labelledGaugeFrom("etcd_edge_watch_cache_ready", "1 while a cached prefix is in step with etcd and serves; 0 while it (re)synchronises and etcd answers.", "prefix", perPrefix((i) => (cache.prefixes[i]!.ready ? 1 : 0)));
  metrics.labelledGaugeFrom("etcd_edge_watch_cache_revision", "The revision up to which a cached prefix holds every change.", "prefix", perPrefix((i) => Number(cache.prefixes[i]!.rev)));
  metrics.labelledGaugeFrom("etcd_edge_watch_cache_keys", "Keys held for a cached prefix.", "prefix", perPrefix((i) => cache.prefixes[i]!.store.size));
  metrics.labelledGaugeFrom("etcd_edge_watch_cache_store_bytes", "Estimated bytes of the keys held for a cached prefix.", "prefix", perPrefix((i) => cache.prefixes[i]!.store.bytes));
  metrics.labelledGaugeFrom("etcd_edge_watch_cache_history_events", "Events in a cached prefix's history.", "prefix", perPrefix((i) => cache.prefixes[i]!.history.events));
  metrics.labelledGaugeFrom("etcd_edge_watch_cache_history_bytes", "Estimated bytes of a cached prefix's history.", "prefix", perPrefix((i) => cache.prefixes[i]!.history.bytes));
  metrics.labelledGaugeFrom("etcd_edge_watch_cache_history_age_seconds", "Age of the oldest event in a cached prefix's history.", "prefix", perPrefix((i) => cache.prefixes[i]!.history.age(Date.now()) / 1000));
  metrics.labelledGaugeFrom("etcd_edge_watch_cache_history_floor", "Oldest revision a cached prefix can serve a read at (watches start after it).", "prefix", perPrefix((i) => Number(cache.prefixes[i]!.history.floor)));
  metrics.labelledGaugeFrom("etcd_edge_watch_cache_resyncs_total", "Snapshots taken of a cached prefix (1 at start; more after etcd compacted past it).", "prefix", perPrefix((i) => cache.prefixes[i]!.snapshots));
  metrics.labelledGaugeFrom("etcd_edge_watch_cache_reconnects_total", "Times a cached prefix's upstream watch was made again after a break.", "prefix", perPrefix((i) => cache.prefixes[i]!.reconnects));
  metrics.labelledGaugeFrom("etcd_edge_watch_cache_served_total", "Requests answered from the watch cache, by kind.", "kind", () => (Object.keys(cache.served) as ServedKind[]).map((k) => [k, cache.served[k]]));
  metrics.labelledGaugeFrom("etcd_edge_watch_cache_fallbacks_total", "Requests inside a cached prefix that etcd answered after all, by reason.", "reason", () => (Object.keys(cache.fallbacks) as FallbackReason[]).map((k) => [k, cache.fallbacks[k]]));
  metrics.labelledGaugeFrom("etcd_edge_watch_cache_memo_hits_total", "Reads answered with an answer already built for the same request at the same revision.", "prefix", perPrefix((i) => cache.prefixes[i]!.memo.hits));
  metrics.counterFrom("etcd_edge_watch_cache_checks_total", "Count-only checks sent to etcd for reads answered from the cache (readers arriving together share one).", () => cache.checks.sent);
}
