/**
 * Soak: the proxy (a child process, as users run it) in front of a real etcd under mixed load for
 * SOAK_SECONDS (45 by default, the CI form; `npm run bench -- soak` runs 600): puts and ranges over gRPC
 * and Connect on HTTP/1.1, watchers opened and cancelled, lease keep-alive streams opened and closed.
 * The proxy's RSS (after a full GC) and open file descriptors at the end of the load are within 10% of
 * what they were after the warm-up (a small absolute slack for small numbers), and once the clients have
 * left, no client watcher, keep-alive stream or upstream watch/stream of theirs is left on the proxy or
 * on etcd. The figures are printed as `# soak:` lines (bench/soak.ts reads them).
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import t from "tap";
import { KV, Lease, LeaseKeepAliveRequestSchema, Watch, type LeaseKeepAliveRequest } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, enc } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { sleep, waitFor } from "../helpers/ports.js";
import { metric } from "../helpers/prom.js";
import { startEdge } from "../helpers/proxy.js";
import { AsyncQueue } from "../helpers/streams.js";
import { WatchSession } from "../helpers/watch-session.js";

const SECONDS = Number(process.env["SOAK_SECONDS"] ?? 45);
/** The first quarter (at least 10 s, at most 120 s) warms up: caches, pools and V8's heap reach their size. */
const WARMUP_MS = Math.min(120_000, Math.max(10_000, (SECONDS * 1000) / 4));
/** Within 10%, or these many absolute units for small numbers. */
const RSS_SLACK_KB = 8 * 1024;
const FD_SLACK = 5;

const etcd = await startEtcd(t);
// Under Node, SIGUSR2 runs a full GC in the proxy (test-only preload, gc-signal.mjs).
const gcPreload = fileURLToPath(new URL("./gc-signal.mjs", import.meta.url));
const rt = process.env["EDGE_RUNTIME"] ?? "node";
const gcAvailable = rt === "node" || rt === "node-dist" || rt === "node-npm";
const savedNodeOptions = process.env["NODE_OPTIONS"];
if (gcAvailable) process.env["NODE_OPTIONS"] = `${savedNodeOptions ?? ""} --import=${gcPreload}`.trim();
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
if (savedNodeOptions === undefined) delete process.env["NODE_OPTIONS"];
else process.env["NODE_OPTIONS"] = savedNodeOptions;
const pid = edge.process.pid!;

const rssKb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
const fds = () => readdirSync(`/proc/${pid}/fd`).length;
/** RSS after a full GC (where available), the median of 3 readings 300 ms apart. */
async function settledRss(): Promise<number> {
  const readings: number[] = [];
  for (let i = 0; i < 3; i++) {
    if (gcAvailable) edge.process.kill("SIGUSR2");
    await sleep(300);
    readings.push(rssKb());
  }
  return readings.sort((a, b) => a - b)[1]!;
}
const gauges = async () => ({
  clientWatchers: await metric(edge.url, "etcd_edge_client_watchers"),
  upstreamWatchers: await metric(edge.url, "etcd_edge_upstream_watchers"),
  upstreamStreams: await metric(edge.url, "etcd_edge_upstream_streams"),
  keepAliveClientStreams: await metric(edge.url, "etcd_edge_lease_keepalive_client_streams"),
  keepAliveUpstreamStreams: await metric(edge.url, "etcd_edge_lease_keepalive_upstream_streams"),
  etcdWatchStreams: await metric(etcd.url, "etcd_debugging_mvcc_watch_stream_total"),
  etcdWatchers: await metric(etcd.url, "etcd_debugging_mvcc_watcher_total"),
  etcdKeepAliveStreams: (await metric(etcd.url, "grpc_server_started_total", { grpc_method: "LeaseKeepAlive" })) - (await metric(etcd.url, "grpc_server_handled_total", { grpc_method: "LeaseKeepAlive" })),
});

t.test(`soak: ${SECONDS} s of mixed load, warm-up ${WARMUP_MS / 1000} s`, async (t) => {
  const kv = clientFor(KV, "grpc", edge.url);
  const kvH1 = clientFor(KV, "connect-binary", edge.url, "1.1");
  const watch = clientFor(Watch, "grpc", edge.url);
  const lease = clientFor(Lease, "grpc", edge.url);
  await kv.put({ key: enc("soak/k/0"), value: enc("0") });
  const baseline = await gauges();
  t.comment(`soak: gauges before the load ${JSON.stringify(baseline)}`);

  const counts = { puts: 0, ranges: 0, watchers: 0, events: 0, leases: 0, keepAlives: 0, errors: 0 };
  const errors: string[] = [];
  const fail = (err: unknown) => {
    counts.errors++;
    if (errors.length < 5) errors.push(String(err));
  };
  const end = Date.now() + SECONDS * 1000;
  const running = () => Date.now() < end;
  const key = () => `soak/k/${Math.floor(Math.random() * 500)}`;

  // Writers and readers: 4 loops over gRPC on HTTP/2, 1 over Connect on HTTP/1.1.
  const kvLoop = async (c: typeof kv) => {
    while (running()) {
      try {
        await c.put({ key: enc(key()), value: enc("v".repeat(Math.floor(Math.random() * 2048))) });
        counts.puts++;
        await c.range({ key: enc(key()) });
        await c.range({ key: enc("soak/k/"), rangeEnd: enc("soak/k0"), limit: 20n, serializable: Math.random() < 0.5 });
        counts.ranges += 2;
      } catch (err) {
        fail(err);
      }
    }
  };
  // Watchers come and go: each watches a random key or the whole prefix for 0.2-2 s, then is cancelled.
  const watchLoop = async () => {
    while (running()) {
      const w = new WatchSession(watch);
      try {
        if (Math.random() < 0.5) await w.createAndWait({ key: enc(key()) });
        else await w.createAndWait({ key: enc("soak/k/"), rangeEnd: enc("soak/k0") });
        counts.watchers++;
        await sleep(200 + Math.random() * 1800);
        counts.events += w.received.reduce((n, r) => n + r.events.length, 0);
      } catch (err) {
        fail(err);
      } finally {
        w.close();
      }
    }
  };
  // Leases come and go: grant, a keep-alive stream with a few keep-alives, close it, revoke.
  const leaseLoop = async () => {
    while (running()) {
      try {
        const { ID } = await lease.leaseGrant({ TTL: 30n });
        counts.leases++;
        const requests = new AsyncQueue<LeaseKeepAliveRequest>();
        const abort = new AbortController();
        const it = lease.leaseKeepAlive(requests, { signal: abort.signal })[Symbol.asyncIterator]();
        for (let i = 0; i < 3 + Math.floor(Math.random() * 5); i++) {
          requests.push(create(LeaseKeepAliveRequestSchema, { ID }));
          const r = await it.next();
          if (r.done || r.value.TTL <= 0n) throw new Error("keep-alive not answered");
          counts.keepAlives++;
          await sleep(50 + Math.random() * 200);
        }
        if (Math.random() < 0.5) requests.end();
        abort.abort();
        await it.return?.().catch(() => {});
        await lease.leaseRevoke({ ID });
      } catch (err) {
        if (!String(err).includes("aborted")) fail(err);
      }
    }
  };
  const loops = [
    ...Array.from({ length: 4 }, () => kvLoop(kv)),
    kvLoop(kvH1),
    ...Array.from({ length: 16 }, () => watchLoop()),
    ...Array.from({ length: 4 }, () => leaseLoop()),
  ];

  await sleep(WARMUP_MS);
  const warm = { rssKb: await settledRss(), fds: fds() };
  const during = await gauges();
  t.comment(`soak: after warm-up (${WARMUP_MS / 1000} s): RSS ${warm.rssKb} kB, ${warm.fds} fds, ${JSON.stringify(counts)}, gauges ${JSON.stringify(during)}`);
  t.ok(during.clientWatchers > 0 && during.upstreamWatchers > 0, "the gauges see the load's watchers while it runs");
  // Sampled through the rest of the run, for the printed figures.
  const samples: { rssKb: number; fds: number }[] = [];
  const sampler = setInterval(() => samples.push({ rssKb: rssKb(), fds: fds() }), 5_000);
  while (Date.now() < end - 3_000) await sleep(500);
  const last = { rssKb: await settledRss(), fds: fds() };
  clearInterval(sampler);
  await Promise.all(loops);
  t.comment(`soak: at the end (${SECONDS} s): RSS ${last.rssKb} kB, ${last.fds} fds; peak during the run RSS ${Math.max(warm.rssKb, ...samples.map((s) => s.rssKb))} kB, ${Math.max(warm.fds, ...samples.map((s) => s.fds))} fds`);
  t.comment(`soak: load ${JSON.stringify(counts)}${errors.length ? `, first errors: ${errors.join(" | ")}` : ""}`);

  t.ok(counts.puts > 0 && counts.watchers > 0 && counts.keepAlives > 0, "every kind of load ran");
  t.ok(counts.errors <= Math.max(3, (counts.puts + counts.watchers + counts.keepAlives) / 1000), `errors: ${counts.errors}`);
  t.ok(last.rssKb <= Math.max(warm.rssKb * 1.1, warm.rssKb + RSS_SLACK_KB), `RSS flat: ${warm.rssKb} → ${last.rssKb} kB (≤ +10% or +${RSS_SLACK_KB} kB)`);
  t.ok(Math.abs(last.fds - warm.fds) <= Math.max(warm.fds * 0.1, FD_SLACK), `open fds flat: ${warm.fds} → ${last.fds} (±10% or ±${FD_SLACK})`);

  // The clients leave: nothing of theirs stays on the proxy or on etcd.
  await waitFor("the proxy and etcd back to their gauges before the load", async () => {
    const g = await gauges();
    return g.clientWatchers === 0 && g.keepAliveClientStreams === 0 && g.keepAliveUpstreamStreams === 0 &&
      g.upstreamWatchers === baseline.upstreamWatchers && g.upstreamStreams === baseline.upstreamStreams &&
      g.etcdWatchStreams === baseline.etcdWatchStreams && g.etcdWatchers === baseline.etcdWatchers && g.etcdKeepAliveStreams === baseline.etcdKeepAliveStreams;
  }, 20_000).catch(() => {});
  const after = await gauges();
  t.comment(`soak: gauges after the clients left ${JSON.stringify(after)}`);
  t.equal(after.clientWatchers, 0, "no client watcher left on the proxy");
  t.equal(after.keepAliveClientStreams, 0, "no client keep-alive stream left on the proxy");
  t.equal(after.keepAliveUpstreamStreams, 0, "no keep-alive stream left from the proxy to etcd");
  t.equal(after.upstreamWatchers, baseline.upstreamWatchers, `upstream watchers back to ${baseline.upstreamWatchers}`);
  t.equal(after.upstreamStreams, baseline.upstreamStreams, `upstream streams back to ${baseline.upstreamStreams} (the range cache's invalidation watch)`);
  t.equal(after.etcdWatchStreams, baseline.etcdWatchStreams, `etcd's watch streams back to ${baseline.etcdWatchStreams}`);
  t.equal(after.etcdWatchers, baseline.etcdWatchers, `etcd's watchers back to ${baseline.etcdWatchers}`);
  t.equal(after.etcdKeepAliveStreams, baseline.etcdKeepAliveStreams, `etcd's keep-alive streams back to ${baseline.etcdKeepAliveStreams}`);
});
