/**
 * Watch N→1 through the proxy against a real etcd: what etcd sees (its own /metrics), what every client
 * gets, and the edges: client-chosen ids, progress requests, a client that stops reading, disconnects,
 * half-close, two users with different roles, a bad or expired token, an etcd restart, and etcdctl.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import t from "tap";
import { Auth, KV, Maintenance, Watch, type WatchResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { dec, enc } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { freePort, sleep, waitFor } from "../helpers/ports.js";
import { startEdge } from "../helpers/proxy.js";
import { etcdWatchers, metric, settledEtcdWatchers, WatchSession } from "../helpers/watch-session.js";

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
const kv = createClient(KV, createGrpcTransport({ baseUrl: etcd.url }));
const direct = createClient(Watch, createGrpcTransport({ baseUrl: etcd.url }));
/** A new client connection to the proxy (its own transport, so its own HTTP/2 connection). */
const proxied = (baseUrl = edge.url) => createClient(Watch, createGrpcTransport({ baseUrl }));

const put = async (k: string, v: string) => (await kv.put({ key: enc(k), value: enc(v) })).header!.revision;
const sessions: WatchSession[] = [];
const session = (c: Client<typeof Watch>, o?: ConstructorParameters<typeof WatchSession>[1]) => {
  const s = new WatchSession(c, o);
  sessions.push(s);
  return s;
};
t.teardown(() => { for (const s of sessions) s.close(); });

/** The parts of a response both sides must agree on, with revisions kept (same etcd, same moment). */
const shape = (r: WatchResponse) => ({
  watchId: r.watchId, created: r.created, canceled: r.canceled, cancelReason: r.cancelReason, compactRevision: r.compactRevision,
  revision: r.header?.revision, events: r.events.map((e) => [e.type, dec(e.kv!.key), dec(e.kv!.value), e.kv!.modRevision]),
});

t.test("1,000 watchers on one key over 50 connections: at most 2 watchers at etcd, every event to every watcher", async (t) => {
  const before = await settledEtcdWatchers(etcd.url);
  const CONNECTIONS = 50, STREAMS = 2, PER_STREAM = 10;
  const streams: WatchSession[] = [];
  for (let c = 0; c < CONNECTIONS; c++) {
    const client = proxied();
    for (let s = 0; s < STREAMS; s++) streams.push(session(client));
  }
  await Promise.all(streams.map(async (s) => { for (let i = 0; i < PER_STREAM; i++) await s.createAndWait({ key: enc("hot") }); }));
  t.equal(streams.reduce((n, s) => n + s.received.filter((r) => r.created && !r.canceled).length, 0), 1000, "1,000 watchers created");
  t.ok((await etcdWatchers(etcd.url)) - before <= 2, `etcd serves at most 2 watchers for them (${(await etcdWatchers(etcd.url)) - before})`);
  t.ok((await metric(edge.url, "etcd_grpc_proxy_watchers_coalescing_total"))! >= 998, "the proxy reports them coalesced");

  const revs: bigint[] = [];
  for (let i = 0; i < 100; i++) revs.push(await put("hot", `v${i}`));
  for (const s of streams) await s.until("100 events on each of 10 watchers", () => s.received.reduce((n, r) => n + r.events.length, 0) >= 100 * PER_STREAM, 30_000);
  let exact = 0;
  for (const s of streams) {
    for (const created of s.received.filter((r) => r.created)) {
      const got = s.events(created.watchId).map((e) => e.kv!.modRevision);
      if (JSON.stringify(got.map(String)) === JSON.stringify(revs.map(String))) exact++;
    }
  }
  t.equal(exact, 1000, "every watcher got all 100 events, once each, in order");
  t.ok((await etcdWatchers(etcd.url)) - before <= 2, "still at most 2 watchers at etcd after the writes");
  t.ok((await metric(edge.url, "etcd_grpc_proxy_events_coalescing_total"))! >= 99 * 100, "events fanned out are counted");

  for (const s of streams) s.close();
  await waitFor("etcd back to its watchers before the test", async () => (await etcdWatchers(etcd.url)) === before);
  await waitFor("no client watchers left on the proxy", async () => (await metric(edge.url, "etcd_edge_client_watchers")) === 0);
});

t.test("watch ids, refusals and progress answers are etcd's", async (t) => {
  const d = session(direct);
  const p = session(proxied());
  const script = async (s: WatchSession) => [
    await s.createAndWait({ key: enc("ids"), watchId: 7n }),
    await s.createAndWait({ key: enc("ids") }),
    await s.createAndWait({ key: enc("ids"), watchId: 1n }),
    await s.createAndWait({ key: enc("ids") }),
    await s.createAndWait({ key: enc("ids"), watchId: 7n }),
    await s.createAndWait({ key: enc("ids/z"), rangeEnd: enc("ids/a") }),
  ].map(shape);
  t.same(await script(p), await script(d), "ids (chosen, auto, skipping taken ones), duplicate and empty-range refusals as etcd gives them");

  const rev = await put("ids", "x");
  await p.until("the event", () => p.events(7n).length === 1);
  p.progress();
  d.progress();
  await p.until("progress answer", () => p.received.some((r) => r.watchId === -1n && !r.created));
  await d.until("progress answer", () => d.received.some((r) => r.watchId === -1n && !r.created));
  const answer = p.received.find((r) => r.watchId === -1n && !r.created)!;
  t.same(shape(answer), shape(d.received.find((r) => r.watchId === -1n && !r.created)!), "progress_request answered with watch_id -1 and the store's revision");
  t.equal(answer.header!.revision, rev, "the answer's revision covers the last write");
  t.ok(p.received.indexOf(answer) > p.received.findIndex((r) => r.events.length > 0), "and comes after the events it covers");

  p.cancel(7n);
  d.cancel(7n);
  p.cancel(99n);
  await p.until("cancel answer", () => p.of(7n).some((r) => r.canceled));
  await d.until("cancel answer", () => d.of(7n).some((r) => r.canceled));
  t.same(shape(p.of(7n).find((r) => r.canceled)!), shape(d.of(7n).find((r) => r.canceled)!), "cancel answered as etcd answers it");
  await put("ids", "y");
  await p.until("event for watcher 0", () => p.events(0n).length === 2);
  t.equal(p.events(7n).length, 1, "a canceled watcher gets nothing more");
});

t.test("a client that stops reading never holds up the others, and gets everything when it reads again", async (t) => {
  const fast = session(proxied());
  const slow = session(proxied(), { paused: true });
  await fast.createAndWait({ key: enc("slow") });
  slow.create({ key: enc("slow") });
  await sleep(200);
  const value = "x".repeat(2048);
  const revs: bigint[] = [];
  for (let i = 0; i < 3000; i++) revs.push(await put("slow", `${i}:${value}`));
  await fast.until("all 3000 events at the reading client", () => fast.events(0n).length === 3000, 60_000);
  t.pass("the reading client got every event while the other one was not reading");
  const buffered = (await metric(edge.url, "etcd_edge_watch_buffered_responses"))!;
  const bound = (await metric(edge.url, "etcd_edge_watch_buffer_max_responses"))!;
  t.ok(buffered <= bound + 1, `the stalled client's buffer stays bounded (${buffered} <= ${bound})`);
  t.ok((await metric(edge.url, "etcd_edge_watch_parked_watchers"))! >= 1, "its watcher is parked, not buffered without end");
  slow.resume();
  await slow.until("all 3000 events at the slow client once it reads", () => slow.events(0n).length === 3000, 60_000);
  t.same(slow.events(0n).map((e) => e.kv!.modRevision), revs, "nothing lost, nothing twice, in order");
  t.equal(slow.received.filter((r) => r.created).length, 1, "one created only");
});

t.test("a stalled client whose revision gets compacted is canceled as etcd cancels it", async (t) => {
  const slow = session(proxied(), { paused: true });
  slow.create({ key: enc("gone") });
  await sleep(200);
  const value = "y".repeat(2048);
  let last = 0n;
  for (let i = 0; i < 3000; i++) last = await put("gone", `${i}:${value}`);
  await waitFor("the slow watcher parked", async () => (await metric(edge.url, "etcd_edge_watch_parked_watchers"))! >= 1);
  await kv.compact({ revision: last });
  slow.resume();
  await slow.until("a compaction cancel", () => slow.received.some((r) => r.canceled), 60_000);
  const cancel = slow.received.find((r) => r.canceled)!;
  t.equal(cancel.compactRevision, last, "canceled with etcd's compact_revision");
  t.equal(cancel.watchId, 0n, "for that watcher");
  const got = slow.events(0n).map((e) => e.kv!.modRevision);
  t.same(got, [...got].sort((a, b) => (a < b ? -1 : 1)), "the events it got before were in order");
  t.ok(got.length < 3000 && new Set(got.map(String)).size === got.length, "none twice");
});

t.test("half-close keeps the watch; disconnect ends it at etcd", async (t) => {
  const before = await settledEtcdWatchers(etcd.url);
  const streamsBefore = (await metric(edge.url, "etcd_edge_upstream_streams"))!;
  const upstreamWatchersBefore = (await metric(edge.url, "etcd_edge_upstream_watchers"))!;
  const s = session(proxied());
  await s.createAndWait({ key: enc("hc") });
  await s.createAndWait({ key: enc("hc/"), rangeEnd: enc("hc0") });
  s.end();
  await sleep(100);
  await put("hc", "1");
  await put("hc/x", "2");
  await s.until("both events after half-close", () => s.events(0n).length === 1 && s.events(1n).length === 1);
  t.pass("events still arrive after the client half-closed");
  t.ok((await etcdWatchers(etcd.url)) > before, "etcd serves the upstream watches");
  s.close();
  await waitFor("etcd's watchers back down", async () => (await etcdWatchers(etcd.url)) === before);
  await waitFor("upstream streams back down", async () => (await metric(edge.url, "etcd_edge_upstream_streams")) === streamsBefore);
  t.equal(await metric(edge.url, "etcd_edge_upstream_watchers"), upstreamWatchersBefore, "no upstream watcher of it left on the proxy");
});

t.test("hasleader rides its own upstream stream, forwarded to etcd", async (t) => {
  const before = await settledEtcdWatchers(etcd.url);
  const plain = session(proxied());
  const leader = session(proxied(), { headers: { hasleader: "true" } });
  await plain.createAndWait({ key: enc("hl") });
  await leader.createAndWait({ key: enc("hl") });
  t.equal((await etcdWatchers(etcd.url)) - before, 2, "one upstream watch per identity (hasleader is part of it), not one shared");
  await put("hl", "1");
  await plain.until("event", () => plain.events(0n).length === 1);
  await leader.until("event", () => leader.events(0n).length === 1);
  plain.close();
  leader.close();
  await waitFor("etcd's watchers back down", async () => (await etcdWatchers(etcd.url)) === before);
});

t.test("progress_notify per client watcher", async (t) => {
  const e = await startEtcd(t, { extraArgs: ["--experimental-watch-progress-notify-interval=500ms"] });
  const px = await startEdge(t, [`--endpoints=${e.endpoint}`]);
  const s = session(proxied(px.url));
  const asked = await s.createAndWait({ key: enc("pn"), progressNotify: true });
  const quiet = await s.createAndWait({ key: enc("pn") });
  await s.until("a progress notification", () => s.of(asked.watchId).some((r) => !r.created && r.events.length === 0), 10_000);
  const note = s.of(asked.watchId).find((r) => !r.created)!;
  t.ok(!note.canceled && note.header!.revision >= asked.header!.revision, "an empty response with the store's revision, for the watcher that asked");
  t.equal(s.of(quiet.watchId).length, 1, "the watcher that did not ask gets nothing but its created");
  t.equal(await metric(px.url, "etcd_edge_upstream_watchers"), 1, "both ride one upstream watch");
});

t.test("etcdctl watch through the proxy", async (t) => {
  const proc: ChildProcess = spawn("etcdctl", [`--endpoints=${edge.addr}`, "watch", "ctl", "--prefix"], { env: { ...process.env, ETCDCTL_API: "3" }, stdio: ["ignore", "pipe", "pipe"] });
  t.teardown(() => { proc.kill("SIGKILL"); });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => { out += d.toString(); });
  const watchersBefore = (await metric(edge.url, "etcd_edge_client_watchers"))!;
  await waitFor("etcdctl's watch on the proxy", async () => (await metric(edge.url, "etcd_edge_client_watchers"))! > watchersBefore);
  await put("ctl/a", "1");
  await kv.deleteRange({ key: enc("ctl/a") });
  await waitFor("etcdctl printed both events", () => out.includes("DELETE"));
  t.match(out, /^PUT\nctl\/a\n1\nDELETE\nctl\/a\n/, "etcdctl prints the put and the delete");
});

t.test("an etcd restart: watchers re-attach from their own revision, no second created, nothing lost", async (t) => {
  const e = await restartableEtcd(t);
  const px = await startEdge(t, [`--endpoints=${e.endpoint}`]);
  const ekv = createClient(KV, createGrpcTransport({ baseUrl: e.url }));
  const eput = async (k: string, v: string) => (await ekv.put({ key: enc(k), value: enc(v) })).header!.revision;
  const a = session(proxied(px.url));
  const b = session(proxied(px.url));
  await a.createAndWait({ key: enc("r") });
  await b.createAndWait({ key: enc("r") });
  await b.createAndWait({ key: enc("r/"), rangeEnd: enc("r0") });
  const revs = [await eput("r", "1")];
  await e.restart();
  // Written before the proxy's new upstream stream is up: replayed from etcd's history on re-attach.
  revs.push(await eput("r", "2"), await eput("r/x", "3"), await eput("r", "4"));
  await a.until("events after the restart", () => a.events(0n).length === 3);
  await b.until("events after the restart", () => b.events(0n).length === 3 && b.events(1n).length === 1);
  t.same(a.events(0n).map((e) => e.kv!.modRevision), [revs[0], revs[1], revs[3]], "key watcher: every event once, in order");
  t.same(b.events(1n).map((e) => e.kv!.modRevision), [revs[2]], "prefix watcher: its event once");
  t.equal(a.received.filter((r) => r.created).length, 1, "no second created");
  t.equal(b.received.filter((r) => r.created).length, 2, "no second created (two watchers)");
  t.notOk(a.ended || b.ended, "client streams stay open across the restart");
});

t.test("two users with different roles never see each other's keys; a bad or expired token fails as on etcd", async (t) => {
  // Simple tokens expire after 2 s unused, to show an expired token refused even where a watch exists.
  const e = await startEtcd(t, { extraArgs: ["--auth-token-ttl=2"] });
  const px = await startEdge(t, [`--endpoints=${e.endpoint}`]);
  const ctl = async (...args: string[]) => {
    const r = await etcdctl(e.endpoint, args);
    if (r.code !== 0) throw new Error(`etcdctl ${args.join(" ")}: ${r.stderr}`);
  };
  await ctl("user", "add", "root", "--new-user-password=rootpw");
  for (const [user, prefix] of [["alice", "a/"], ["bob", "b/"]] as const) {
    await ctl("role", "add", `r-${user}`);
    await ctl("role", "grant-permission", `r-${user}`, "read", prefix, "--prefix");
    await ctl("user", "add", user, "--new-user-password=pw");
    await ctl("user", "grant-role", user, `r-${user}`);
  }
  await ctl("auth", "enable");
  const auth = createClient(Auth, createGrpcTransport({ baseUrl: e.url }));
  const token = async (name: string, password = "pw") => (await auth.authenticate({ name, password })).token;
  const rootKv = createClient(KV, createGrpcTransport({ baseUrl: e.url }));
  const rootPut = async (k: string, v: string) => rootKv.put({ key: enc(k), value: enc(v) }, { headers: { token: await token("root", "rootpw") } });
  const both = async (headers: Record<string, string>, key: string, prefix = false) => {
    const range = prefix ? { rangeEnd: enc(key.slice(0, -1) + String.fromCharCode(key.charCodeAt(key.length - 1) + 1)) } : {};
    const p = session(proxied(px.url), { headers });
    const d = session(createClient(Watch, createGrpcTransport({ baseUrl: e.url })), { headers });
    return { p, d, pc: await p.createAndWait({ key: enc(key), ...range }), dc: await d.createAndWait({ key: enc(key), ...range }) };
  };
  const before = await settledEtcdWatchers(e.url);
  const aliceToken = await token("alice");
  const alice = await both({ token: aliceToken }, "a/", true);
  t.notOk(alice.pc.canceled, "alice may watch a/");
  const aliceAgain = session(proxied(px.url), { headers: { token: aliceToken } });
  t.notOk((await aliceAgain.createAndWait({ key: enc("a/"), rangeEnd: enc("a0") })).canceled, "alice's second stream joins her watch");
  const bobOnA = await both({ token: await token("bob") }, "a/k");
  t.same(shape(bobOnA.pc), shape(bobOnA.dc), "bob's watch on alice's key is refused as etcd refuses it");
  t.match(bobOnA.pc.cancelReason, /permission denied/);
  const aliceOnB = await both({ token: await token("alice") }, "b/", true);
  t.same(shape(aliceOnB.pc), shape(aliceOnB.dc), "alice's watch on b/ is refused as etcd refuses it");
  const bob = await both({ token: await token("bob") }, "b/", true);
  t.notOk(bob.pc.canceled, "bob may watch b/");
  const bad = await both({ token: "not-a-token" }, "a/k");
  t.same(shape(bad.pc), shape(bad.dc), "a bad token fails as on etcd");
  t.match(bad.pc.cancelReason, /invalid auth token/);
  const none = await both({}, "a/k");
  t.same(shape(none.pc), shape(none.dc), "no token fails as on etcd");

  // alice's token expires (unused for longer than its TTL) while her shared watch on a/ lives on: a new
  // watch with it must be refused as etcd refuses it, not slip onto the existing upstream watch.
  await sleep(5000);
  const expired = await both({ token: aliceToken }, "a/", true);
  t.same(shape(expired.pc), shape(expired.dc), "an expired token is refused even where a shared watch exists");

  await rootPut("a/k", "for-alice");
  await rootPut("b/k", "for-bob");
  await alice.p.until("alice's event", () => alice.p.events(alice.pc.watchId).length === 1);
  await bob.p.until("bob's event", () => bob.p.events(bob.pc.watchId).length === 1);
  await sleep(200);
  const keysSeen = (s: WatchSession) => s.received.flatMap((r) => r.events.map((ev) => dec(ev.kv!.key)));
  t.same(keysSeen(alice.p), ["a/k"], "alice sees only her key");
  t.same(keysSeen(aliceAgain), ["a/k"], "alice's second stream too");
  t.same(keysSeen(bob.p), ["b/k"], "bob sees only his");
  t.same([...keysSeen(bobOnA.p), ...keysSeen(aliceOnB.p), ...keysSeen(bad.p), ...keysSeen(none.p), ...keysSeen(expired.p)], [], "refused watchers see nothing");
  t.equal(await metric(px.url, "etcd_edge_upstream_watchers"), 2, "the proxy holds one upstream watch for alice's two and one for bob's");
  // `before` may hold the proxy's own (non-watch) upstream watches; the two direct watches are the tests'.
  t.ok((await etcdWatchers(e.url)) - before - 2 <= 2, "etcd serves at most those two for alice's two and bob's one client watchers");
});

/** An etcd on fixed ports that can be killed and started again on the same data. */
async function restartableEtcd(t: { teardown(fn: () => unknown): void }): Promise<{ endpoint: string; url: string; restart(): Promise<void> }> {
  const [client, peer] = [await freePort(), await freePort()];
  const dataDir = mkdtempSync(join(tmpdir(), "etcd-edge-restart-"));
  const url = `http://127.0.0.1:${client}`;
  const args = ["--name", "r", "--data-dir", dataDir, "--listen-client-urls", url, "--advertise-client-urls", url,
    "--listen-peer-urls", `http://127.0.0.1:${peer}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${peer}`,
    "--initial-cluster", `r=http://127.0.0.1:${peer}`, "--log-level", "error", "--logger", "zap"];
  let proc: ChildProcess;
  const start = async () => {
    proc = spawn("etcd", args, { stdio: "ignore" });
    const probe = createClient(Maintenance, createGrpcTransport({ baseUrl: url }));
    await waitFor("etcd up", async () => { await probe.status({}); return true; });
  };
  const kill = async () => {
    if (proc.exitCode !== null) return;
    proc.kill("SIGKILL");
    await new Promise((r) => proc.once("exit", r));
  };
  await start();
  t.teardown(async () => { await kill(); rmSync(dataDir, { recursive: true, force: true }); });
  return { endpoint: `127.0.0.1:${client}`, url, async restart() { await kill(); await start(); } };
}
