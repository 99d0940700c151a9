/**
 * etcd's per-watch progress notifications for watchers fed by the watch cache: etcd sends one every
 * interval (--experimental-watch-progress-notify-interval) to each progress_notify watch that was sent no
 * event in it. The cache's own watch on the whole prefix is busy whenever any key in it is, so the proxy
 * makes them itself (--watch-cache-progress-notify-interval): a watcher of a quiet key inside a busy
 * prefix gets them as on etcd, and a watcher of the busy key, sent events all along, does not.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import t from "tap";
import { KV, Watch } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, enc } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { sleep, waitFor } from "../helpers/ports.js";
import { metric } from "../helpers/prom.js";
import { startEdge } from "../helpers/proxy.js";
import { WatchSession } from "../helpers/watch-session.js";

const etcd = await startEtcd(t, { extraArgs: ["--experimental-watch-progress-notify-interval=1s"] });
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, "--watch-cache-prefix=/p/", "--watch-cache-progress-notify-interval=1s"]);
const direct = createClient(KV, createGrpcTransport({ baseUrl: etcd.url }));
await waitFor("the cache to be ready", async () => (await metric(edge.url, "etcd_edge_watch_cache_ready")) === 1);

t.test("a quiet key in a busy prefix gets progress notifications, the busy key none, through the cache as on etcd", async (t) => {
  const sessions = { edge: new WatchSession(clientFor(Watch, "grpc", edge.url)), etcd: new WatchSession(createClient(Watch, createGrpcTransport({ baseUrl: etcd.url }))) };
  t.teardown(() => { sessions.edge.close(); sessions.etcd.close(); });
  for (const s of Object.values(sessions)) {
    await s.createAndWait({ key: enc("/p/quiet"), progressNotify: true }); // id 0
    await s.createAndWait({ key: enc("/p/busy"), progressNotify: true }); // id 1
  }
  t.ok((await metric(edge.url, "etcd_edge_watch_cache_served_total", { kind: "watch" })) >= 2, "fed by the cache");
  const end = Date.now() + 5_500;
  for (let i = 0; Date.now() < end; i++) {
    await direct.put({ key: enc("/p/busy"), value: enc(String(i)) });
    await sleep(150);
  }
  const progress = (s: WatchSession, id: bigint) => s.of(id).filter((r) => !r.created && r.events.length === 0).length;
  for (const [name, s] of Object.entries(sessions)) {
    t.ok(progress(s, 0n) >= 3, `${name}: the quiet key's watcher got ${progress(s, 0n)} progress notifications in 5.5 s (interval 1 s)`);
    t.ok(progress(s, 1n) <= 1, `${name}: the busy key's watcher got ${progress(s, 1n)} (it was sent events all along)`);
  }
  const last = sessions.edge.of(0n).at(-1)!;
  // The last one came within the last interval, during which ~7 puts (one per 150 ms) went on.
  t.ok(last.header!.revision >= (await direct.range({ key: enc("x") })).header!.revision - 10n, `a notification carries a recent revision (${last.header!.revision})`);
});
