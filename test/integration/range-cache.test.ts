/**
 * The serializable range cache against a real etcd: it takes the load off etcd, it is never wrong (direct
 * writes seen within 100 ms, proxy writes at once, every range shape, no stale re-cache after a write), and
 * nobody gets a value etcd would refuse them.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import t, { type Test } from "tap";
import { Auth, KV, type RangeRequest } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, dec, enc } from "../helpers/clients.js";
import { startEtcd, type Etcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { waitFor } from "../helpers/ports.js";
import { metric } from "../helpers/prom.js";
import { startEdge, type EdgeProxy } from "../helpers/proxy.js";

type RangeInit = Partial<Omit<RangeRequest, "$typeName" | "$unknown">>;
const NUL = new Uint8Array([0]);

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
const viaEdge = clientFor(KV, "grpc", edge.url);
const viaEtcd = clientFor(KV, "grpc", etcd.url);
await cacheLive(edge, 1);

async function cacheLive(p: EdgeProxy, want: 0 | 1): Promise<void> {
  await waitFor(`etcd_edge_cache_enabled ${want}`, async () => await metric(p.url, "etcd_edge_cache_enabled") === want);
}

const sget = (req: RangeInit, token?: string, client: Client<typeof KV> = viaEdge) =>
  client.range({ ...req, serializable: true }, token ? { headers: { token } } : {});
const values = (r: { kvs: { key: Uint8Array; value: Uint8Array }[] }) => r.kvs.map((kv) => `${dec(kv.key)}=${dec(kv.value)}`);
const hits = () => metric(edge.url, "etcd_grpc_proxy_cache_hits_total");

/** Reads twice and checks the second read came from the cache, so an invalidation test is not vacuous. */
async function cached(t: Tap, req: RangeInit): Promise<string[]> {
  await sget(req);
  const before = await hits();
  const r = await sget(req);
  t.ok(await hits() > before, `cached: ${JSON.stringify(values(r))}`);
  return values(r);
}
type Tap = Pick<Test, "ok">;

t.test("10,000 serializable gets of one key reach etcd as at most 100 Range calls", async (t) => {
  await viaEtcd.put({ key: enc("hot"), value: enc("v") });
  const before = await metric(etcd.url, "grpc_server_started_total", { grpc_method: "Range" });
  let started = 0;
  let wrong = 0;
  const worker = async () => {
    while (started < 10_000) {
      started++;
      const r = await sget({ key: enc("hot") });
      if (r.kvs.length !== 1 || dec(r.kvs[0]!.value) !== "v") wrong++;
    }
  };
  await Promise.all(Array.from({ length: 50 }, worker));
  const ranges = await metric(etcd.url, "grpc_server_started_total", { grpc_method: "Range" }) - before;
  t.equal(wrong, 0, "every get saw the value");
  t.ok(ranges <= 100, `etcd served ${ranges} Range calls for 10,000 gets`);
  t.ok(await hits() >= 9_900, "the rest were cache hits");
});

t.test("a put made directly on etcd is visible to a serializable get through the proxy within 100 ms", async (t) => {
  for (let round = 0; round < 5; round++) {
    await viaEtcd.put({ key: enc("bypass"), value: enc(`old${round}`) });
    await waitFor("the old value through the proxy", async () => values(await sget({ key: enc("bypass") }))[0] === `bypass=old${round}`);
    t.same(await cached(t, { key: enc("bypass") }), [`bypass=old${round}`]);
    await viaEtcd.put({ key: enc("bypass"), value: enc(`new${round}`) });
    const acked = performance.now();
    let seen = "";
    while (performance.now() - acked < 2000 && seen !== `bypass=new${round}`) seen = values(await sget({ key: enc("bypass") }))[0] ?? "";
    const ms = performance.now() - acked;
    t.equal(seen, `bypass=new${round}`);
    t.ok(ms <= 100, `round ${round}: visible ${ms.toFixed(1)} ms after etcd acknowledged the put`);
  }
});

t.test("from-key, prefix (0xff carry) and whole-keyspace entries are invalidated by direct writes", async (t) => {
  const fromKey = { key: enc("f"), rangeEnd: NUL };
  const prefix = { key: enc("p/"), rangeEnd: enc("p0") };
  const carry = { key: new Uint8Array([0x71, 0xff]), rangeEnd: new Uint8Array([0x72]) };
  const everything = { key: NUL, rangeEnd: NUL, countOnly: true };
  await viaEtcd.put({ key: enc("f1"), value: enc("1") });
  await viaEtcd.put({ key: enc("p/1"), value: enc("1") });
  await cached(t, fromKey);
  await cached(t, prefix);
  await cached(t, carry);
  await cached(t, everything);
  const total = (await sget(everything)).count;
  await viaEtcd.put({ key: enc("fz"), value: enc("z") });
  await viaEtcd.put({ key: enc("p/2"), value: enc("2") });
  await viaEtcd.put({ key: new Uint8Array([0x71, 0xff, 0xff]), value: enc("c") });
  await waitFor("from-key to show fz", async () => values(await sget(fromKey)).includes("fz=z"));
  await waitFor("the prefix to show p/2", async () => values(await sget(prefix)).includes("p/2=2"));
  await waitFor("the 0xff prefix to show its key", async () => (await sget(carry)).kvs.length === 1);
  await waitFor("the whole-keyspace count to grow", async () => (await sget(everything)).count === total + 3n);
  await viaEtcd.deleteRange({ key: enc("f"), rangeEnd: NUL });
  await waitFor("a from-key delete to empty the from-key entry", async () => (await sget(fromKey)).kvs.length === 0);
  t.pass("all invalidated");
});

t.test("writes through the proxy invalidate at once: put, delete, txn with a nested txn", async (t) => {
  const fromKey = { key: enc("w"), rangeEnd: NUL };
  await viaEdge.put({ key: enc("w1"), value: enc("1") });
  t.same(await cached(t, fromKey), ["w1=1"]);
  await viaEdge.put({ key: enc("w2"), value: enc("2") });
  t.same(values(await sget(fromKey)), ["w1=1", "w2=2"], "put");
  t.same(await cached(t, fromKey), ["w1=1", "w2=2"]);
  await viaEdge.deleteRange({ key: enc("w1") });
  t.same(values(await sget(fromKey)), ["w2=2"], "delete");
  t.same(await cached(t, fromKey), ["w2=2"]);
  await viaEdge.txn({
    success: [{ request: { case: "requestTxn", value: { success: [{ request: { case: "requestPut", value: { key: enc("w3"), value: enc("3") } } }] } } }],
  });
  t.same(values(await sget(fromKey)), ["w2=2", "w3=3"], "a put inside a nested txn");
  t.same(await cached(t, { key: enc("w2") }), ["w2=2"]);
  await viaEdge.txn({ compare: [{ key: enc("w2"), target: 3, targetUnion: { case: "value", value: enc("2") } }], success: [{ request: { case: "requestDeleteRange", value: { key: enc("w"), rangeEnd: NUL } } }] });
  t.same(values(await sget({ key: enc("w2") })), [], "a from-key delete in a txn");
});

t.test("a read racing a write never puts the old value back in the cache", async (t) => {
  let stale = 0;
  for (let i = 0; i < 200; i++) {
    const racing = sget({ key: enc("race") });
    await viaEdge.put({ key: enc("race"), value: enc(`v${i}`) });
    await racing;
    const after = values(await sget({ key: enc("race") }))[0];
    if (after !== `race=v${i}`) stale++;
  }
  t.equal(stale, 0, "every read after the put's answer saw the put");
});

t.test("identical concurrent reads share one upstream call; a linearizable read never joins one already sent", async (t) => {
  await viaEtcd.put({ key: enc("lin"), value: enc("0") });
  const sharedBefore = await metric(edge.url, "etcd_edge_singleflight_shared_total");
  const before = await metric(etcd.url, "grpc_server_started_total", { grpc_method: "Range" });
  const answers = await Promise.all(Array.from({ length: 200 }, () => viaEdge.range({ key: enc("lin") })));
  const ranges = await metric(etcd.url, "grpc_server_started_total", { grpc_method: "Range" }) - before;
  t.ok(answers.every((r) => dec(r.kvs[0]!.value) === "0"));
  t.ok(ranges <= 100, `200 concurrent linearizable gets: ${ranges} Range calls at etcd`);
  t.ok(await metric(edge.url, "etcd_edge_singleflight_shared_total") > sharedBefore, "shared calls are counted");

  // Background readers keep calls for the key in flight all the time; a read started after a write was
  // acknowledged must still see it (it would not if it joined a call sent before the write).
  let stop = false;
  const background = Array.from({ length: 8 }, async () => { while (!stop) await viaEdge.range({ key: enc("lin") }); });
  let stale = 0;
  for (let i = 1; i <= 100; i++) {
    await viaEtcd.put({ key: enc("lin"), value: enc(`${i}`) });
    if (dec((await viaEdge.range({ key: enc("lin") })).kvs[0]!.value) !== `${i}`) stale++;
  }
  stop = true;
  await Promise.all(background);
  t.equal(stale, 0, "every linearizable read after a direct write saw it");
});

t.test("compaction: cached answers stay right and the cache stays live", async (t) => {
  await viaEdge.put({ key: enc("c1"), value: enc("a") });
  const put = await viaEdge.put({ key: enc("c1"), value: enc("b") });
  t.same(await cached(t, { key: enc("c1") }), ["c1=b"]);
  await viaEdge.compact({ revision: put.header!.revision });
  t.same(values(await sget({ key: enc("c1") })), ["c1=b"]);
  const old = await sget({ key: enc("c1"), revision: put.header!.revision - 1n }).then(() => undefined, (e) => ConnectError.from(e));
  t.equal(old?.code, Code.OutOfRange, "a compacted revision is etcd's OutOfRange, never a cached answer");
  t.equal(old?.rawMessage, "etcdserver: mvcc: required revision has been compacted");
  await viaEtcd.put({ key: enc("c1"), value: enc("c") });
  await waitFor("the direct write after the compaction", async () => values(await sget({ key: enc("c1") }))[0] === "c1=c");
  t.equal(await metric(edge.url, "etcd_edge_cache_enabled"), 1);
});

t.test("etcdctl get --consistency=s through the proxy behaves as against etcd", async (t) => {
  for (const [k, v] of [["e/a", "1"], ["e/b", "2"], ["e/c", "3"]]) await viaEdge.put({ key: enc(k!), value: enc(v!) });
  for (const extra of [[], ["--prefix"], ["--prefix", "--limit=2"], ["--prefix", "--keys-only"], ["--from-key"], ["--prefix", "--sort-by=MODIFY", "--order=DESCEND"]]) {
    const args = ["get", "e/", "--consistency=s", ...extra];
    for (let i = 0; i < 2; i++) { // the second one from the cache
      const [d, p] = [await etcdctl(etcd.endpoint, args), await etcdctl(edge.addr, args)];
      t.equal(p.code, d.code, `exit code: etcdctl ${args.join(" ")}`);
      t.equal(p.stdout, d.stdout, `stdout: etcdctl ${args.join(" ")} (${i ? "cached" : "first"})`);
    }
  }
});

t.test("auth: nobody gets a value etcd would refuse them", async (t) => {
  const etcdA: Etcd = await startEtcd(t);
  const edgeA = await startEdge(t, [`--endpoints=${etcdA.endpoint}`]);
  const kvA = clientFor(KV, "grpc", edgeA.url);
  const kvDirect = clientFor(KV, "grpc", etcdA.url);
  await cacheLive(edgeA, 1);
  await kvDirect.put({ key: enc("secret"), value: enc("s3") });
  await kvDirect.put({ key: enc("pub/x"), value: enc("1") });
  // Auth still off: a tokenless read of the secret is cached.
  await sget({ key: enc("secret") }, undefined, kvA);
  t.same(values(await sget({ key: enc("secret") }, undefined, kvA)), ["secret=s3"]);

  // Auth switched on directly at etcd, behind the proxy's back.
  for (const args of [["user", "add", "root:rootpw", "--interactive=false"], ["role", "add", "root"], ["user", "grant-role", "root", "root"],
    ["role", "add", "reader"], ["role", "grant-permission", "reader", "read", "pub/", "--prefix=true"],
    ["user", "add", "alice:alicepw", "--interactive=false"], ["user", "grant-role", "alice", "reader"], ["auth", "enable"]]) {
    const r = await etcdctl(etcdA.endpoint, args);
    t.equal(r.code, 0, `etcdctl ${args.join(" ")}: ${r.stderr}`);
  }
  const refusal = async (p: Promise<unknown>) => { try { await p; return undefined; } catch (e) { return ConnectError.from(e); } };
  const etcdSays = await refusal(sget({ key: enc("secret") }, undefined, kvDirect));
  t.equal(etcdSays?.rawMessage, "etcdserver: user name is empty");
  await waitFor("the proxy to refuse the tokenless read as etcd does", async () => (await refusal(sget({ key: enc("secret") }, undefined, kvA)))?.rawMessage === etcdSays?.rawMessage, 5000);
  await cacheLive(edgeA, 0);

  const auth = clientFor(Auth, "grpc", edgeA.url);
  const rootToken = (await auth.authenticate({ name: "root", password: "rootpw" })).token;
  const aliceToken = (await auth.authenticate({ name: "alice", password: "alicepw" })).token;
  t.same(values(await sget({ key: enc("secret") }, rootToken, kvA)), ["secret=s3"]);
  t.same(values(await sget({ key: enc("secret") }, rootToken, kvA)), ["secret=s3"], "root twice");
  const aliceDirect = await refusal(sget({ key: enc("secret") }, aliceToken, kvDirect));
  const aliceProxy = await refusal(sget({ key: enc("secret") }, aliceToken, kvA));
  t.equal(aliceDirect?.code, Code.PermissionDenied);
  t.equal(aliceProxy?.code, aliceDirect?.code, "alice: etcd's code");
  t.equal(aliceProxy?.rawMessage, "etcdserver: permission denied", "alice: etcd's message");
  t.same(values(await sget({ key: enc("pub/x") }, aliceToken, kvA)), ["pub/x=1"], "alice reads what she may");
  const anon = await refusal(sget({ key: enc("secret") }, undefined, kvA));
  t.equal(anon?.code, etcdSays?.code);
  t.equal(anon?.rawMessage, etcdSays?.rawMessage);
  const bogus = await refusal(sget({ key: enc("secret") }, "bogus.token", kvA));
  const bogusDirect = await refusal(sget({ key: enc("secret") }, "bogus.token", kvDirect));
  t.equal(bogus?.code, bogusDirect?.code);
  t.equal(bogus?.rawMessage, bogusDirect?.rawMessage);
  t.equal(await metric(edgeA.url, "etcd_edge_cache_enabled"), 0, "with auth on, the tokenless invalidation watch is refused and the cache bypassed");
});
