/**
 * --endpoints-auto-sync-interval against real etcd: the proxy replaces its endpoint list with etcd's
 * members' client URLs and uses it (its first endpoint, a forwarder, can then go away); a member added to
 * the cluster is used and a member removed is dropped without a restart. And Upstream.setEndpoints itself:
 * a unary call in flight on a removed endpoint finishes, a stream on it ends Unavailable, the next call
 * goes to the new list.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import t from "tap";
import { KV, Watch, WatchRequestSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import { Upstream } from "../../src/upstream/client/upstream.js";
import { clientFor, dec, enc } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { freePort, waitFor } from "../helpers/ports.js";
import { startEdge } from "../helpers/proxy.js";
import { AsyncQueue } from "../helpers/streams.js";
import { startForwarder } from "../helpers/tcp-forwarder.js";
import { WatchSession } from "../helpers/watch-session.js";

/** The endpoints the proxy calls now, from its `etcd_edge_upstream_endpoint_up` series. */
async function endpointsOf(proxyUrl: string): Promise<string[]> {
  const text = await (await fetch(`${proxyUrl}/metrics`)).text();
  return [...text.matchAll(/^etcd_edge_upstream_endpoint_up\{endpoint="([^"]+)"\}/gm)].map((m) => m[1]!).sort();
}

const portOf = (endpoint: string) => Number(endpoint.split(":").pop());

t.test("the synced list is used: the first endpoint (a forwarder) can go, a watch carries on", async (t) => {
  const etcd = await startEtcd(t);
  const fwd = await startForwarder(t, { host: "127.0.0.1", port: portOf(etcd.endpoint) });
  const edge = await startEdge(t, [`--endpoints=${fwd.addr}`, "--endpoints-auto-sync-interval=2s"]);
  t.same(await endpointsOf(edge.url), [`http://${fwd.addr}`], "before the first sync: --endpoints");

  const session = new WatchSession(clientFor(Watch, "grpc", edge.url));
  t.teardown(() => session.close());
  await session.createAndWait({ key: enc("sync/w") });
  const kv = clientFor(KV, "grpc", etcd.url);
  await kv.put({ key: enc("sync/w"), value: enc("1") });
  await session.until("the first event", () => session.received.some((r) => r.events.length > 0));

  await waitFor("the member list's client URL to replace --endpoints", async () => (await endpointsOf(edge.url)).join() === etcd.url, 10_000);
  await fwd.close();
  await kv.put({ key: enc("sync/w"), value: enc("2") });
  await session.until("the second event, on the watch re-attached to the synced endpoint", () => session.received.flatMap((r) => r.events).some((e) => dec(e.kv!.value) === "2"));
  t.same(session.received.flatMap((r) => r.events).map((e) => dec(e.kv!.value)), ["1", "2"], "each event once");
  t.equal((await etcdctl(edge.addr, ["put", "sync/k", "v"])).code, 0, "put through the proxy after the forwarder is gone");
  t.equal((await etcdctl(edge.addr, ["get", "sync/k", "--print-value-only"])).stdout, "v\n");
});

/** One member of a cluster, on given ports (member add needs the peer URL before the member starts). */
async function startMember(t: { teardown(fn: () => unknown): void }, name: string, peerPort: number, cluster: string, state: "new" | "existing") {
  const clientPort = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "etcd-edge-member-"));
  const url = `http://127.0.0.1:${clientPort}`;
  const proc: ChildProcess = spawn("etcd", ["--name", name, "--data-dir", dataDir, "--listen-client-urls", url, "--advertise-client-urls", url,
    "--listen-peer-urls", `http://127.0.0.1:${peerPort}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${peerPort}`,
    "--initial-cluster", cluster, "--initial-cluster-state", state, "--log-level", "error", "--logger", "zap"], { stdio: "ignore" });
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGKILL");
      await new Promise((r) => proc.once("exit", r));
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  t.teardown(stop);
  return { url, endpoint: `127.0.0.1:${clientPort}`, stop };
}

t.test("a member added is used, a member removed is dropped, without a restart", async (t) => {
  const [peerA, peerB] = [await freePort(), await freePort()];
  const a = await startMember(t, "a", peerA, `a=http://127.0.0.1:${peerA}`, "new");
  await waitFor("member a serving", async () => (await etcdctl(a.endpoint, ["put", "x", "1"])).code === 0);
  const edge = await startEdge(t, [`--endpoints=${a.endpoint}`, "--endpoints-auto-sync-interval=300ms"]);

  const added = await etcdctl(a.endpoint, ["member", "add", "b", `--peer-urls=http://127.0.0.1:${peerB}`]);
  t.equal(added.code, 0, added.stderr);
  const b = await startMember(t, "b", peerB, `a=http://127.0.0.1:${peerA},b=http://127.0.0.1:${peerB}`, "existing");
  await waitFor("the proxy to call both members", async () => (await endpointsOf(edge.url)).join() === [a.url, b.url].sort().join(), 20_000);
  t.pass("b is in the proxy's endpoint list");

  const idA = (await etcdctl(b.endpoint, ["member", "list"])).stdout.split("\n").find((l) => l.includes(", a, "))!.split(",")[0]!;
  // etcd refuses ("unhealthy cluster") until b has been connected for its health interval (5 s).
  await waitFor("member remove a", async () => (await etcdctl(b.endpoint, ["member", "remove", idA])).code === 0, 30_000);
  await a.stop();
  await waitFor("the proxy to drop a", async () => (await endpointsOf(edge.url)).join() === b.url, 20_000);
  t.pass("a is no longer in the list");
  await waitFor("b to lead alone", async () => (await etcdctl(edge.addr, ["put", "after", "v"])).code === 0, 20_000);
  t.equal((await etcdctl(edge.addr, ["get", "after", "--print-value-only"])).stdout, "v\n", "reads and writes through the proxy go to b");
});

t.test("Upstream.setEndpoints: in-flight calls finish, streams on a removed endpoint end Unavailable", async (t) => {
  const etcd = await startEtcd(t);
  const slow = await startForwarder(t, { host: "127.0.0.1", port: portOf(etcd.endpoint) });
  const other = await startForwarder(t, { host: "127.0.0.1", port: portOf(etcd.endpoint) });
  const up = new Upstream({ endpoints: [{ url: `http://${slow.addr}`, tls: false }], tls: undefined, maxSendBytes: 1 << 20, maxRecvBytes: 1 << 20, keepAliveTimeMs: 0, keepAliveTimeoutMs: 20_000 });
  t.teardown(() => up.close());
  await up.unary(undefined, (c, o) => c.kv.put({ key: enc("se/k"), value: enc("v") }, o), { readOnly: false });

  // A watch stream on the endpoint about to be removed.
  const requests = new AsyncQueue<ReturnType<typeof create<typeof WatchRequestSchema>>>();
  requests.push(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: enc("se/k") } } }));
  const caller = { requestHeader: new Headers(), signal: new AbortController().signal, timeoutMs: () => undefined };
  const it = up.stream(caller, (c, o) => c.watch.watch(requests, o))[Symbol.asyncIterator]();
  t.ok((await it.next()).value?.created, "watch created on the first endpoint");
  const ended = it.next().then(() => undefined, (err: unknown) => ConnectError.from(err));

  slow.delayMs = 300;
  const inFlight = up.unary(undefined, (c, o) => c.kv.range({ key: enc("se/k") }, o), { readOnly: true });
  await new Promise((r) => setTimeout(r, 50));
  t.same(up.setEndpoints([{ url: `http://${other.addr}`, tls: false }]), { added: [`http://${other.addr}`], removed: [`http://${slow.addr}`] });
  t.equal(dec((await inFlight).kvs[0]!.value), "v", "the call in flight on the removed endpoint finished");
  const err = await ended;
  t.equal(err?.code, Code.Unavailable, "the stream on it ended Unavailable");
  t.match(err?.rawMessage, `etcd endpoint http://${slow.addr} was removed from the endpoint list`);
  t.equal(up.openStreams, 0);
  const before = other.accepted;
  await up.unary(undefined, (c, o) => c.kv.range({ key: enc("se/k") }, o), { readOnly: true });
  t.ok(other.accepted > before, "the next call went to the new endpoint");
});
