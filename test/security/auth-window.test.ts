/**
 * The window right after `auth enable`: a tokenless serializable read cached while auth was off must not
 * be served once auth is on.
 * - AuthEnable through the proxy (gRPC or the JSON gateway): the very next tokenless read through the
 *   proxy, and every one after it, gets etcd's own refusal (services/auth.ts turns the cache off before
 *   the AuthEnable answer goes back).
 * - `auth enable` done directly on etcd: the proxy notices with its auth probe (cache-invalidator.ts),
 *   every 500 ms plus one probe round trip; asserted generously (3 s) on this shared machine.
 */
import { ConnectError } from "@connectrpc/connect";
import t, { type Test } from "tap";
import { Auth, KV } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, enc } from "../helpers/clients.js";
import { startEtcd, type Etcd } from "../helpers/etcd.js";
import { call, type Answer } from "../helpers/gateway.js";
import { sleep, waitFor } from "../helpers/ports.js";
import { metric } from "../helpers/prom.js";
import { startEdge, type EdgeProxy } from "../helpers/proxy.js";

const b64 = (s: string) => Buffer.from(s).toString("base64");
const RANGE_JSON = JSON.stringify({ key: b64("secret"), serializable: true });

interface Setup {
  etcd: Etcd;
  edge: EdgeProxy;
  kv: ReturnType<typeof clientFor<typeof KV>>;
  kvDirect: ReturnType<typeof clientFor<typeof KV>>;
}

/** The outcome of a call as a comparable string: "ok <values>" or "<code> <etcd's message>". */
async function outcome(p: Promise<{ kvs: { value: Uint8Array }[] }>): Promise<string> {
  try {
    const r = await p;
    return `ok ${r.kvs.map((kv) => Buffer.from(kv.value).toString()).join(",")}`;
  } catch (err) {
    const ce = ConnectError.from(err);
    return `${ce.code} ${ce.rawMessage}`;
  }
}

const tokenless = (s: Setup, direct = false) => outcome((direct ? s.kvDirect : s.kv).range({ key: enc("secret"), serializable: true }));
const gatewayRead = (base: string): Promise<Answer> => call(base, "/v3/kv/range", RANGE_JSON, { headers: { "content-type": "application/json" } });
const hits = (edge: EdgeProxy) => metric(edge.url, "etcd_grpc_proxy_cache_hits_total");

/**
 * A fresh etcd with a root user (auth still off), the proxy in front, and the tokenless read of "secret"
 * in the proxy's cache, checked by its hit counter (over gRPC and the gateway: one cache entry, same identity).
 */
async function setup(t: Test): Promise<Setup> {
  const etcd = await startEtcd(t);
  const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
  const s: Setup = { etcd, edge, kv: clientFor(KV, "grpc", edge.url), kvDirect: clientFor(KV, "grpc", etcd.url) };
  const auth = clientFor(Auth, "grpc", etcd.url);
  await auth.userAdd({ name: "root", password: "rootpw" });
  await auth.roleAdd({ name: "root" });
  await auth.userGrantRole({ user: "root", role: "root" });
  await s.kvDirect.put({ key: enc("secret"), value: enc("s3") });
  await waitFor("the range cache to be live", async () => await metric(edge.url, "etcd_edge_cache_enabled") === 1);
  t.equal(await tokenless(s), "ok s3");
  const before = await hits(edge);
  t.equal(await tokenless(s), "ok s3");
  const viaGateway = await gatewayRead(edge.url);
  t.equal(viaGateway.status, 200);
  t.equal(await hits(edge), before + 2, "the tokenless read is served from the cache (gRPC and gateway)");
  return s;
}

/** After auth is on: tokenless reads through the proxy get what etcd gives them, over gRPC and the gateway. */
async function refusedAsEtcd(t: Test, s: Setup, what: string): Promise<void> {
  const etcdSays = await tokenless(s, true);
  t.equal(etcdSays, "3 etcdserver: user name is empty", "etcd refuses the tokenless read");
  t.equal(await tokenless(s), etcdSays, `${what}: the next tokenless gRPC read gets etcd's refusal`);
  const [viaEdge, viaEtcd] = [await gatewayRead(s.edge.url), await gatewayRead(s.etcd.url)];
  t.same({ status: viaEdge.status, body: JSON.parse(viaEdge.body) }, { status: viaEtcd.status, body: JSON.parse(viaEtcd.body) }, `${what}: the gateway's answer is etcd's gateway's`);
}

/** For a while after, no tokenless read is ever served (the invalidation watch must not come back). */
async function neverServedAfter(t: Test, s: Setup, ms: number): Promise<void> {
  const seen = new Set<string>();
  const hitsBefore = await hits(s.edge);
  const until = Date.now() + ms;
  while (Date.now() < until) {
    seen.add(await tokenless(s));
    await sleep(20);
  }
  t.same([...seen], ["3 etcdserver: user name is empty"], `every tokenless read for ${ms} ms was refused`);
  t.equal(await hits(s.edge), hitsBefore, "no cache hits");
  t.equal(await metric(s.edge.url, "etcd_edge_cache_enabled"), 0, "the cache stays off");
}

t.test("AuthEnable through the proxy over gRPC: the very next tokenless read gets etcd's error", async (t) => {
  const s = await setup(t);
  const res = await clientFor(Auth, "grpc", s.edge.url).authEnable({});
  t.ok(res.header, "auth enabled");
  await refusedAsEtcd(t, s, "gRPC AuthEnable");
  await neverServedAfter(t, s, 1500);
});

t.test("AuthEnable through the proxy's JSON gateway: the very next tokenless read gets etcd's error", async (t) => {
  const s = await setup(t);
  const res = await call(s.edge.url, "/v3/auth/enable", "{}", { headers: { "content-type": "application/json" } });
  t.equal(res.status, 200, res.body);
  const viaGateway = await gatewayRead(s.edge.url);
  const viaEtcd = await gatewayRead(s.etcd.url);
  t.same({ status: viaGateway.status, body: JSON.parse(viaGateway.body) }, { status: viaEtcd.status, body: JSON.parse(viaEtcd.body) }, "the very next gateway read: etcd's gateway's answer");
  await refusedAsEtcd(t, s, "gateway AuthEnable");
  await neverServedAfter(t, s, 1500);
});

t.test("an AuthEnable etcd refuses leaves the cache serving again (no lasting outage)", async (t) => {
  const etcd = await startEtcd(t);
  const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
  await waitFor("the range cache to be live", async () => await metric(edge.url, "etcd_edge_cache_enabled") === 1);
  let refusal = "";
  try {
    await clientFor(Auth, "grpc", edge.url).authEnable({});
  } catch (err) {
    refusal = ConnectError.from(err).rawMessage;
  }
  t.equal(refusal, "etcdserver: root user does not exist", "etcd refuses: no root user");
  await waitFor("the range cache to be live again", async () => await metric(edge.url, "etcd_edge_cache_enabled") === 1, 10_000);
  t.pass("the invalidation watch was re-created and the cache serves again");
});

t.test("auth enable done directly on etcd: the cache stops serving tokenless callers within the probe bound", async (t) => {
  const s = await setup(t);
  await clientFor(Auth, "grpc", s.etcd.url).authEnable({});
  const enabledAt = Date.now();
  // The real bound is authProbeMs (500 ms) + one probe round trip; 3 s leaves room for a loaded machine.
  await waitFor("the proxy to refuse the tokenless read", async () => await tokenless(s) === "3 etcdserver: user name is empty", 3000);
  const took = Date.now() - enabledAt;
  t.ok(took <= 3000, `refused ${took} ms after auth enable on etcd`);
  t.comment(`tokenless reads were refused ${took} ms after auth enable directly on etcd`);
  await refusedAsEtcd(t, s, "direct auth enable");
  await neverServedAfter(t, s, 1000);
});
