/** What etcd itself says it carries, read from its /metrics: watchers, watch streams, keep-alive streams. */

export interface EtcdCounts {
  /** etcd_debugging_mvcc_watcher_total */
  watchers: number;
  /** etcd_debugging_mvcc_watch_stream_total */
  watchStreams: number;
  /** LeaseKeepAlive streams open: grpc_server_started_total − Σ grpc_server_handled_total. */
  keepAliveStreams: number;
}

export async function etcdCounts(etcdUrl: string): Promise<EtcdCounts> {
  const res = await fetch(new URL("/metrics", etcdUrl), { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`etcd /metrics: HTTP ${res.status}`);
  const text = await res.text();
  let started = 0;
  let handled = 0;
  let watchers = NaN;
  let watchStreams = NaN;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (line.startsWith("etcd_debugging_mvcc_watcher_total ")) watchers = value;
    else if (line.startsWith("etcd_debugging_mvcc_watch_stream_total ")) watchStreams = value;
    else if (line.includes('grpc_method="LeaseKeepAlive"')) {
      if (line.startsWith("grpc_server_started_total{")) started += value;
      else if (line.startsWith("grpc_server_handled_total{")) handled += value;
    }
  }
  return { watchers, watchStreams, keepAliveStreams: started - handled };
}

/**
 * Counts once they stop moving: etcd's proxy merges watchers into shared upstream watches some time after
 * they are created, so the first reading may be on its way down. Two equal readings 300 ms apart, or the
 * last reading after `maxMs`.
 */
export async function settledEtcdCounts(etcdUrl: string, maxMs = 3000): Promise<EtcdCounts> {
  const deadline = Date.now() + maxMs;
  let last = await etcdCounts(etcdUrl);
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 300));
    const next = await etcdCounts(etcdUrl);
    if (next.watchers === last.watchers && next.watchStreams === last.watchStreams && next.keepAliveStreams === last.keepAliveStreams) return next;
    last = next;
  }
  return last;
}
