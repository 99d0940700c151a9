/**
 * --namespace=P against a real etcd: what clients write lands under P (read directly on etcd), what they
 * read and watch comes from under P with P stripped, and keys outside P, written directly on etcd, are
 * never visible or writable through the proxy, in etcdctl, gRPC, Connect, gRPC-Web and the JSON gateway.
 * Election and Lock are namespaced too (etcd's proxy leaves them at the root). Two proxies with
 * different namespaces on one etcd never see each other's keys or cached answers.
 */
import { spawn } from "node:child_process";
import t from "tap";
import { Compare_CompareResult, Compare_CompareTarget, KV, Lease, Watch } from "../../gen/etcdserverpb/rpc_pb.js";
import { Election } from "../../gen/v3electionpb/v3election_pb.js";
import { Lock } from "../../gen/v3lockpb/v3lock_pb.js";
import { clientFor, dec, enc, rejection } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { call, openStream } from "../helpers/gateway.js";
import { waitFor } from "../helpers/ports.js";
import { metric } from "../helpers/prom.js";
import { startEdge } from "../helpers/proxy.js";
import { etcdWatchers, settledEtcdWatchers, WatchSession } from "../helpers/watch-session.js";

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, "--namespace=ns/"]);
const other = await startEdge(t, [`--endpoints=${etcd.endpoint}`, "--namespace=other/"]);

/** etcdctl's output; a failed command fails the test that ran it. */
const ctl = async (endpoint: string, args: string[], input?: string) => {
  const r = await etcdctl(endpoint, args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
};
/** etcdctl's `get -w json` keys and values, decoded. */
const getJson = async (endpoint: string, args: string[]) => {
  const out = JSON.parse(await ctl(endpoint, ["get", ...args, "-w", "json"])) as { kvs?: { key: string; value: string }[] };
  return (out.kvs ?? []).map((kv) => `${Buffer.from(kv.key, "base64").toString()}=${Buffer.from(kv.value ?? "", "base64").toString()}`);
};
const direct = (args: string[]) => getJson(etcd.endpoint, args);

// Outside the namespace, written on etcd itself: never to be seen or changed through the proxy. "ns/" is
// the key P itself, which no client key maps to (clientv3's namespace leaves it out of "" --prefix too).
const OUTSIDE = ["k=outside", "a=outside", "ns=outside", "ns/=root", "ns0=outside", "nr=outside", "zzz=outside", "other/k=theirs"];
for (const kv of OUTSIDE) {
  const [k, v] = kv.split("=") as [string, string];
  await ctl(etcd.endpoint, ["put", k, v]);
}
/** The keys outside written above that are no longer on etcd as written: none, whatever went through the proxy. */
const outsideChanged = async () => {
  const all = await direct(["", "--prefix"]);
  return OUTSIDE.filter((kv) => !kv.startsWith("other/") && !all.includes(kv));
};
/** What etcd holds under ns/, stripped, without the key P itself: what a client of the proxy must see. */
const namespaceOnEtcd = async () => (await direct(["ns/", "--prefix"])).filter((kv) => !kv.startsWith("ns/=")).map((kv) => kv.slice(3));

t.test("etcdctl put through the proxy lands under ns/ on etcd; get sees only the namespace", async (t) => {
  t.equal((await ctl(edge.addr, ["put", "k", "v"])).trim(), "OK");
  for (const [k, v] of [["a/1", "1"], ["a/2", "2"], ["b", "3"]]) await ctl(edge.addr, ["put", k!, v!]);
  t.same(await direct(["ns/k"]), ["ns/k=v"], "etcd holds ns/k");
  t.same(await direct(["k"]), ["k=outside"], "the root's k is untouched");
  t.same(await getJson(edge.addr, ["k"]), ["k=v"], "get k: the namespace's k, key stripped");
  const inside = ["a/1=1", "a/2=2", "b=3", "k=v"];
  t.same(await getJson(edge.addr, ["", "--prefix"]), inside, 'get "" --prefix: the namespace only, without the key P');
  t.same(await namespaceOnEtcd(), inside, "which is what etcd holds under ns/");
  t.same(await getJson(edge.addr, ["", "--from-key"]), inside, 'get --from-key "": stops at the end of the namespace');
  t.same(await getJson(edge.addr, ["a", "--from-key"]), inside, "get --from-key a: from a to the end of the namespace, not zzz");
  t.same(await getJson(edge.addr, ["a/", "--prefix"]), ["a/1=1", "a/2=2"]);
  t.same(await getJson(edge.addr, ["a/1", "b"]), ["a/1=1", "a/2=2"], "a range [a/1, b)");
  t.same(await getJson(edge.addr, ["", "--prefix", "--consistency=s"]), inside, "serializable (cached) the same");
  t.same(await getJson(edge.addr, ["zzz"]), [], "an outside key is not there");
  const empty = await etcdctl(edge.addr, ["put", "", "x"]);
  t.not(empty.code, 0, "an empty key is refused, as etcd refuses it");
  t.match(empty.stderr, /key is not provided/);
  t.same(await outsideChanged(), [], "every key outside is as written on etcd");
});

t.test("txn with compares and nested ops; delete ranges", async (t) => {
  const kv = clientFor(KV, "grpc", edge.url);
  const txn = await ctl(edge.addr, ["txn", "-w", "json"], 'value("k") = "v"\nversion("a/1") > "0"\n\nput t1 yes\nget a/ --prefix\n\nput t1 no\n\n');
  const res = JSON.parse(txn) as { succeeded?: boolean; responses: { Response: { ResponseRange?: { kvs: { key: string }[] } } }[] };
  t.equal(res.succeeded, true, "compares were made against ns/k and ns/a/1");
  t.same(res.responses[1]!.Response.ResponseRange!.kvs.map((x) => Buffer.from(x.key, "base64").toString()), ["a/1", "a/2"], "range in a txn: keys stripped");
  t.same(await direct(["ns/t1"]), ["ns/t1=yes"]);
  const failed = await ctl(edge.addr, ["txn"], 'value("zzz") = "outside"\n\nput t2 leak\n\nput t2 else\n\n');
  t.match(failed, /FAILURE/, "a compare on zzz compares ns/zzz, which does not exist");
  const nested = await kv.txn({
    compare: [{ key: enc("k"), target: Compare_CompareTarget.VALUE, result: Compare_CompareResult.EQUAL, targetUnion: { case: "value", value: enc("v") } }],
    success: [{ request: { case: "requestTxn", value: {
      compare: [{ key: enc("a/"), rangeEnd: enc("a0"), target: Compare_CompareTarget.VERSION, result: Compare_CompareResult.GREATER, targetUnion: { case: "version", value: 0n } }],
      success: [
        { request: { case: "requestPut", value: { key: enc("n/1"), value: enc("nested"), prevKv: true } } },
        { request: { case: "requestRange", value: { key: enc("a/"), rangeEnd: enc("a0") } } },
        { request: { case: "requestDeleteRange", value: { key: enc("t1"), prevKv: true } } },
      ],
    } } }],
  });
  t.ok(nested.succeeded);
  const inner = nested.responses[0]!.response;
  t.equal(inner.case, "responseTxn");
  const innerOps = inner.case === "responseTxn" ? inner.value.responses.map((r) => r.response) : [];
  t.same(innerOps[1]?.case === "responseRange" ? innerOps[1].value.kvs.map((x) => dec(x.key)) : undefined, ["a/1", "a/2"], "nested range answer stripped");
  t.same(innerOps[2]?.case === "responseDeleteRange" ? innerOps[2].value.prevKvs.map((x) => dec(x.key)) : undefined, ["t1"], "nested delete's prev_kv stripped");
  t.same(await direct(["ns/n/1"]), ["ns/n/1=nested"]);
  const emptyInTxn = await rejection(kv.txn({ success: [{ request: { case: "requestPut", value: { key: new Uint8Array(0), value: enc("x") } } }] }));
  t.equal(emptyInTxn.rawMessage, "etcdserver: key is not provided", "an empty key inside a txn is refused as etcd refuses it (clientv3's namespace would write the key P)");

  t.equal((await ctl(edge.addr, ["del", "a/", "--prefix", "--prev-kv"])).trim(), "2\na/1\n1\na/2\n2", "del --prefix --prev-kv: keys stripped");
  await ctl(edge.addr, ["put", "d1", "x"]);
  t.equal((await ctl(edge.addr, ["del", "", "--from-key"])).trim().split("\n")[0], "5", 'del --from-key "": every key of the namespace (b, d1, k, n/1, t2)');
  t.same(await direct(["ns/", "--prefix"]), ["ns/=root"], "the namespace is empty but for the key P, which no client can name");
  t.same(await outsideChanged(), [], "every key outside is as written on etcd");
  await ctl(edge.addr, ["put", "k", "v"]);
});

/** A long-running etcdctl: its output so far. */
function run(endpoint: string, args: string[]) {
  const proc = spawn("etcdctl", [`--endpoints=${endpoint}`, ...args], { env: { ...process.env, ETCDCTL_API: "3" }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout.on("data", (d: Buffer) => { out += d.toString(); });
  proc.stderr.on("data", (d: Buffer) => { out += d.toString(); });
  let exited = false;
  proc.on("exit", () => { exited = true; });
  const stop = async () => {
    if (exited) return;
    proc.kill("SIGKILL");
    await new Promise((r) => proc.once("exit", r));
  };
  t.teardown(stop);
  return { out: () => out, stop };
}

t.test("etcdctl watch --prefix --prev-kv: only the namespace's events, keys stripped", async (t) => {
  const before = await settledEtcdWatchers(etcd.url);
  const w = run(edge.addr, ["watch", "", "--prefix", "--prev-kv"]);
  await waitFor("the watch registered on etcd", async () => (await etcdWatchers(etcd.url)) >= before + 1);
  await ctl(etcd.endpoint, ["put", "zzz", "outside2"]);
  await ctl(etcd.endpoint, ["put", "ns/", "root2"]);
  await ctl(etcd.endpoint, ["put", "nsx", "outside2"]);
  await ctl(etcd.endpoint, ["put", "ns/k", "direct"]);
  await ctl(edge.addr, ["put", "k", "proxied"]);
  await ctl(edge.addr, ["put", "done", "1"]);
  await waitFor("the last event", () => w.out().includes("done"));
  await w.stop();
  t.equal(w.out(), "PUT\nk\nv\nk\ndirect\nPUT\nk\ndirect\nk\nproxied\nPUT\ndone\n1\n", "prev_kv stripped too; nothing from outside, nor the key P");
});

t.test('gRPC watch on "\\0".."\\0" (everything) stays inside; the JSON gateway watch too', async (t) => {
  const session = new WatchSession(clientFor(Watch, "grpc", edge.url));
  t.teardown(() => session.close());
  await session.createAndWait({ key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), prevKv: true });
  const gw = await openStream(edge.url, "/v3/watch", JSON.stringify({ create_request: { key: Buffer.from("g/").toString("base64"), range_end: Buffer.from("g0").toString("base64") } }));
  t.teardown(() => gw.abort());
  t.match(await gw.lines.next("the gateway's created"), /"created":true/);
  await ctl(etcd.endpoint, ["put", "a", "outside3"]);
  await ctl(etcd.endpoint, ["put", "g/x", "outside3"]);
  await ctl(etcd.endpoint, ["put", "ns/g/x", "in"]);
  await session.until("the event", () => session.events(0n).length > 0);
  t.same(session.events(0n).map((e) => dec(e.kv!.key)), ["g/x"]);
  const line = await gw.lines.next("the gateway's event");
  const ev = (JSON.parse(line) as { result: { events: { kv: { key: string; value: string } }[] } }).result.events[0]!;
  t.same([Buffer.from(ev.kv.key, "base64").toString(), Buffer.from(ev.kv.value, "base64").toString()], ["g/x", "in"]);
});

t.test("JSON gateway range, Connect and gRPC-Web calls: the namespace only", async (t) => {
  const r = await call(edge.url, "/v3/kv/range", JSON.stringify({ key: "AA==", range_end: "AA==" }));
  t.equal(r.status, 200, r.body);
  const keys = ((JSON.parse(r.body) as { kvs?: { key: string }[] }).kvs ?? []).map((kv) => Buffer.from(kv.key, "base64").toString());
  t.same(keys, (await namespaceOnEtcd()).map((kv) => kv.split("=")[0]), "POST /v3/kv/range over everything: exactly what etcd holds under ns/");
  for (const protocol of ["connect-json", "connect-binary", "grpc-web"] as const) {
    const kv = clientFor(KV, protocol, edge.url);
    await kv.put({ key: enc(`via-${protocol}`), value: enc("1") });
    const got = await kv.range({ key: enc("k") });
    t.same(got.kvs.map((x) => `${dec(x.key)}=${dec(x.value)}`), ["k=proxied"], `${protocol}: get k`);
    t.same(await direct([`ns/via-${protocol}`]), [`ns/via-${protocol}=1`], `${protocol}: the put is under ns/`);
  }
});

t.test("lease timetolive --keys: keys outside the namespace dropped, the rest stripped", async (t) => {
  const id = /lease ([0-9a-f]+) granted/.exec(await ctl(edge.addr, ["lease", "grant", "60"]))![1]!;
  await ctl(edge.addr, ["put", "leased", "x", `--lease=${id}`]);
  await ctl(etcd.endpoint, ["put", "root-leased", "x", `--lease=${id}`]);
  const out = await ctl(edge.addr, ["lease", "timetolive", id, "--keys"]);
  t.match(out, /attached keys\(\[leased\]\)/, out);
  t.match(await ctl(etcd.endpoint, ["lease", "timetolive", id, "--keys"]), /attached keys\(\[(ns\/leased root-leased|root-leased ns\/leased)\]\)/, "etcd itself lists both");
  t.same(await getJson(edge.addr, ["leased"]), ["leased=x"]);
  const ttl = await clientFor(Lease, "grpc", edge.url).leaseTimeToLive({ ID: BigInt(`0x${id}`), keys: true });
  t.same(ttl.keys.map(dec), ["leased"]);
  await ctl(edge.addr, ["lease", "revoke", id]);
});

t.test("Election and Lock: names and keys under the namespace, answers stripped (etcd's proxy leaves them at the root)", async (t) => {
  const lease = await clientFor(Lease, "grpc", edge.url).leaseGrant({ TTL: 60n });
  const hex = lease.ID.toString(16);
  const election = clientFor(Election, "grpc", edge.url);
  const won = await election.campaign({ name: enc("e1"), lease: lease.ID, value: enc("me") });
  t.same([dec(won.leader!.name), dec(won.leader!.key)], ["e1", `e1/${hex}`]);
  t.same(await direct([`ns/e1/${hex}`]), [`ns/e1/${hex}=me`], "the campaign key on etcd");
  t.same(await direct(["e1/", "--prefix"]), [], "nothing at the root");
  await election.proclaim({ leader: won.leader!, value: enc("me2") });
  const leader = await election.leader({ name: enc("e1") });
  t.same([dec(leader.kv!.key), dec(leader.kv!.value)], [`e1/${hex}`, "me2"]);
  const gwLeader = await call(edge.url, "/v3/election/leader", JSON.stringify({ name: Buffer.from("e1").toString("base64") }));
  t.match(gwLeader.body, Buffer.from(`e1/${hex}`).toString("base64"), "the gateway's Leader answer, stripped");
  await election.resign({ leader: won.leader! });
  t.same(await direct([`ns/e1/${hex}`]), [], "resigned: the key is gone");

  const lock = clientFor(Lock, "grpc", edge.url);
  const held = await lock.lock({ name: enc("l1"), lease: lease.ID });
  t.equal(dec(held.key), `l1/${hex}`);
  t.equal((await direct([`ns/l1/${hex}`])).length, 1, "the lock key on etcd is under ns/");
  t.same(await direct(["l1/", "--prefix"]), []);
  await lock.unlock({ key: held.key });
  t.same(await direct([`ns/l1/${hex}`]), [], "unlocked");
  const env = await ctl(edge.addr, ["lock", "l2", "env"]);
  t.match(env, /^ETCD_LOCK_KEY=l2\/[0-9a-f]+$/m, "etcdctl lock (clientv3's mutex over KV and Watch) sees its key stripped");
});

t.test("two namespaces on one etcd: neither sees the other's keys or cached answers; the cache stays live", async (t) => {
  await ctl(other.addr, ["put", "k", "B"]);
  t.same(await direct(["other/k"]), ["other/k=B"]);
  t.same(await getJson(other.addr, ["", "--prefix"]), ["k=B"], "other/ sees only its own key, not other's neighbours");
  for (let i = 0; i < 3; i++) {
    t.same(await getJson(edge.addr, ["k", "--consistency=s"]), ["k=proxied"]);
    t.same(await getJson(other.addr, ["k", "--consistency=s"]), ["k=B"]);
  }
  const hits = await metric(edge.url, "etcd_grpc_proxy_cache_hits_total");
  t.ok(hits > 0, `the range cache serves inside a namespace (hits ${hits})`);
  // A write directly on etcd under ns/ reaches the cache through the namespaced invalidation watch ...
  await ctl(etcd.endpoint, ["put", "ns/k", "fresh"]);
  await waitFor("ns/k's new value through the cache", async () => (await getJson(edge.addr, ["k", "--consistency=s"]))[0] === "k=fresh", 5000);
  // ... and one outside (the root's k, the other namespace's k) changes nothing in it.
  await ctl(etcd.endpoint, ["put", "k", "outside4"]);
  await ctl(other.addr, ["put", "k", "B2"]);
  t.same(await getJson(edge.addr, ["k", "--consistency=s"]), ["k=fresh"]);
  t.same(await getJson(other.addr, ["k", "--consistency=s"]), ["k=B2"]);
  t.same(await getJson(other.addr, ["", "--prefix", "--consistency=s"]), ["k=B2"], "other/ never sees ns/'s keys");
});
