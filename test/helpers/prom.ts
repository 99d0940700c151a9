/** Reads Prometheus text from a /metrics URL (etcd's own or the proxy's) and sums the matching series. */

/** Sum of every series of `name` whose labels include all of `labels`. */
export async function metric(baseUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labelText = m[2] ?? "";
    if (want.every((w) => labelText.includes(w))) sum += Number(m[3]);
  }
  return sum;
}

/** etcd's open streams of one gRPC method, as etcd counts them: started minus handled. */
export async function openStreams(etcdUrl: string, method: string): Promise<number> {
  const started = await metric(etcdUrl, "grpc_server_started_total", { grpc_method: method });
  const handled = await metric(etcdUrl, "grpc_server_handled_total", { grpc_method: method });
  return started - handled;
}
