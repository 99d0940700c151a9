/**
 * The watch cache's claim (README, Watch cache) on a real etcd, with --watch-cache-prefix=/wc/ over 2,000
 * keys: 50 watchers from 50 past revisions get exactly the responses the same watchers get on etcd, and
 * etcd gains no watcher for them; a linearizable list and a list at a past revision equal etcd's byte for
 * byte, over gRPC and Connect, while etcd sends less than 5% of the lists' bytes (its count-only checks).
 * Runs on etcd 3.4 (no ordered progress answers: reads wait for events only) and, from
 * test/etcd35/etcd-3.5.test.ts, on 3.5.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import t from "tap";
import { KV, RangeResponseSchema, Watch, WatchResponseSchema, type RequestOp } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, enc } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { waitFor } from "../helpers/ports.js";
import { metric } from "../helpers/prom.js";
import { startEdge } from "../helpers/proxy.js";
import { etcdWatchers, settledEtcdWatchers, WatchSession } from "../helpers/watch-session.js";

const PREFIX = "/wc/";
const KEYS = 2_000;

{
  {
    const etcd = await startEtcd(t);
    const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, `--watch-cache-prefix=${PREFIX}`]);
    const direct = createClient(KV, createGrpcTransport({ baseUrl: etcd.url }));
    await waitFor("the cache to be ready", async () => (await metric(edge.url, "etcd_edge_watch_cache_ready")) === 1);

    // 2,000 keys in 50 txns of 40 puts, then 100 single changes (overwrites and deletes, some outside).
    const put = (key: string, value: string): RequestOp => ({ request: { case: "requestPut", value: { key: enc(key), value: enc(value) } } }) as RequestOp;
    for (let i = 0; i < 50; i++) {
      await direct.txn({ success: Array.from({ length: 40 }, (_, j) => put(`${PREFIX}k${String(i * 40 + j).padStart(4, "0")}`, `v${i}-${j}`)) });
    }
    for (let i = 0; i < 100; i++) {
      const key = `${PREFIX}k${String((i * 37) % KEYS).padStart(4, "0")}`;
      if (i % 5 === 4) await direct.deleteRange({ key: enc(key) });
      else if (i % 7 === 6) await direct.put({ key: enc(`/elsewhere/${i}`), value: enc("x") });
      else await direct.put({ key: enc(key), value: enc(`changed-${i}`) });
    }
    const head = (await direct.range({ key: enc("x") })).header!.revision;
    await waitFor("the cache to reach etcd's revision", async () => (await metric(edge.url, "etcd_edge_watch_cache_revision")) >= Number(head) - 20);

    await t.test("50 watchers from 50 past revisions: etcd's responses, no watcher at etcd", async (t) => {
      const first = head - 148n;
      const starts = Array.from({ length: 50 }, (_, i) => first + BigInt(i * 3));
      const baseline = await settledEtcdWatchers(etcd.url);
      const viaEdge = new WatchSession(clientFor(Watch, "grpc", edge.url));
      const onEtcd = new WatchSession(createClient(Watch, createGrpcTransport({ baseUrl: etcd.url })));
      t.teardown(() => { viaEdge.close(); onEtcd.close(); });
      const inits = starts.map((start, i) => ({ key: enc(PREFIX), rangeEnd: enc("/wc0"), startRevision: start, prevKv: i % 2 === 0, filters: i % 4 === 3 ? [1] : [] })); // NODELETE on every fourth
      for (const init of inits) await viaEdge.createAndWait(init);
      t.equal(await etcdWatchers(etcd.url), baseline, "the proxy's 50 watchers added no watcher at etcd");
      for (const init of inits) await onEtcd.createAndWait(init);
      const upTo = (s: WatchSession, id: bigint) => s.of(id).some((r) => r.events.some((e) => e.kv!.modRevision >= head - 2n));
      await viaEdge.until("every watcher through the proxy to catch up", () => starts.every((_, i) => upTo(viaEdge, BigInt(i))));
      await onEtcd.until("every watcher on etcd to catch up", () => starts.every((_, i) => upTo(onEtcd, BigInt(i))));
      for (let i = 0; i < starts.length; i++) {
        // Whole responses: the batching of the catch-up (etcd: up to 1,000 revisions a response), headers, filters, prev_kv.
        const responses = (s: WatchSession) => s.of(BigInt(i)).map((r) => Buffer.from(toBinary(WatchResponseSchema, r)).toString("hex"));
        t.same(responses(viaEdge), responses(onEtcd), `watcher ${i} from revision ${starts[i]}: etcd's responses`);
      }
      const created = (s: WatchSession) => s.received.filter((r) => r.created).map((r) => [r.watchId, r.header!.revision]);
      t.same(created(viaEdge), created(onEtcd), "the same created answers (ids, header revisions)");
      t.ok(await metric(edge.url, "etcd_edge_watch_cache_served_total", { kind: "watch" }) >= 50, "served from the cache");
    });

    await t.test("a linearizable list and a list at a past revision: etcd's bytes, for 5% of them from etcd", async (t) => {
      const sentBytes = () => metric(etcd.url, "etcd_network_client_grpc_sent_bytes_total");
      const past = head - 60n;
      const asks = [{ key: enc(PREFIX), rangeEnd: enc("/wc0") }, { key: enc(PREFIX), rangeEnd: enc("/wc0"), revision: past }];
      const expected = await Promise.all(asks.map(async (a) => toBinary(RangeResponseSchema, await direct.range(a))));
      t.ok(expected[0]!.length > 40_000, `the list is ${expected[0]!.length} bytes`);
      let listed = 0;
      const before = await sentBytes();
      for (const protocol of ["grpc", "connect-binary", "connect-json"] as const) {
        const kv = clientFor(KV, protocol, edge.url);
        for (const [i, a] of asks.entries()) {
          const got = toBinary(RangeResponseSchema, await kv.range(a));
          t.same(Buffer.from(got).toString("hex") === Buffer.from(expected[i]!).toString("hex"), true, `${protocol}: ${i === 0 ? "linearizable" : `revision ${past}`} list equals etcd's`);
          listed += got.length;
        }
      }
      const sent = (await sentBytes()) - before;
      const checks = await metric(edge.url, "etcd_edge_watch_cache_checks_total");
      const together = await Promise.all(Array.from({ length: 20 }, () => clientFor(KV, "grpc", edge.url).range(asks[0]!)));
      t.ok(together.every((r) => r.kvs.length === together[0]!.kvs.length), "20 lists at once");
      t.ok((await metric(edge.url, "etcd_edge_watch_cache_checks_total")) - checks < 20, `readers arriving together shared checks (${(await metric(edge.url, "etcd_edge_watch_cache_checks_total")) - checks} for 20)`);
      t.ok(sent < listed * 0.05, `etcd sent ${sent} bytes for ${listed} bytes of lists (< 5%)`);
      t.ok(await metric(edge.url, "etcd_edge_watch_cache_served_total", { kind: "linearizable" }) >= 3, "linearizable lists served from the cache");
      t.ok(await metric(edge.url, "etcd_edge_watch_cache_served_total", { kind: "revision" }) >= 3, "past-revision lists served from the cache");
    });

    await t.test("after a write outside the prefix: served after one progress answer where etcd orders them (3.5), else by etcd", async (t) => {
      await direct.put({ key: enc("/elsewhere/last"), value: enc("x") });
      const version = (await (await fetch(`${etcd.url}/version`)).json() as { etcdserver: string }).etcdserver;
      const ordered = !version.startsWith("3.4.");
      const before = await metric(edge.url, "etcd_edge_watch_cache_served_total", { kind: "linearizable" });
      const behind = await metric(edge.url, "etcd_edge_watch_cache_fallbacks_total", { reason: "behind" });
      const ask = { key: enc(PREFIX), rangeEnd: enc("/wc0") };
      const got = toBinary(RangeResponseSchema, await clientFor(KV, "grpc", edge.url).range(ask));
      t.equal(Buffer.from(got).toString("hex"), Buffer.from(toBinary(RangeResponseSchema, await direct.range(ask))).toString("hex"), "etcd's answer either way");
      if (ordered) t.equal(await metric(edge.url, "etcd_edge_watch_cache_served_total", { kind: "linearizable" }), before + 1, `etcd ${version}: from the cache`);
      else t.equal(await metric(edge.url, "etcd_edge_watch_cache_fallbacks_total", { reason: "behind" }), behind + 1, `etcd ${version}: from etcd (its progress answers are not ordered)`);
      // A progress_request on a stream the cache feeds: answered by the cache (etcd 3.5 never answers a
      // stream without watches), never below what the watcher was told, never beyond what it was sent.
      await direct.put({ key: enc("/elsewhere/later"), value: enc("y") });
      const s = new WatchSession(clientFor(Watch, "grpc", edge.url));
      t.teardown(() => s.close());
      const created = (await s.createAndWait({ key: enc(PREFIX), rangeEnd: enc("/wc0"), startRevision: head - 5n })).header!.revision;
      await direct.put({ key: enc("/elsewhere/later"), value: enc("z") });
      s.progress();
      await s.until("the progress answer", () => s.received.some((r) => r.watchId === -1n && !r.created));
      const answer = s.received.find((r) => r.watchId === -1n && !r.created)!.header!.revision;
      const etcdHead = (await direct.range({ key: enc("x") })).header!.revision;
      t.ok(answer <= etcdHead, `progress answer ${answer} <= etcd's head ${etcdHead}`);
      if (ordered) t.equal(answer, etcdHead, "etcd 3.5: etcd's head, once the cache holds everything up to it (its own ordered progress answer)");
      else t.ok(answer < etcdHead && answer >= BigInt(await metric(edge.url, "etcd_edge_watch_cache_revision")) - 0n, `etcd 3.4: the cache's revision ${answer}, not etcd's head ${etcdHead}: the write elsewhere is not known to be delivered (created at ${created})`);
    });
  }
}
