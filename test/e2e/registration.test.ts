/**
 * --resolver-prefix / --resolver-ttl: the proxy registers itself in etcd as etcd's grpc-proxy does (the same
 * key and value, checked against `etcd grpc-proxy start` itself), keeps its lease alive, registers again
 * after etcd loses the lease, removes its key on shutdown, and its key expires at the TTL when it dies.
 * MemberList through a registered proxy lists every registered proxy, etcd's own among them; etcd's
 * proxy lists ours too (it reads the same layout).
 */
import { spawn } from "node:child_process";
import { hostname } from "node:os";
import t from "tap";
import { KV, Lease } from "../../gen/etcdserverpb/rpc_pb.js";
import { clientFor, dec, enc } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { freePort, portOpen, waitFor } from "../helpers/ports.js";
import { startEdge, type EdgeProxy } from "../helpers/proxy.js";

const PREFIX = "___grpc_proxy_endpoint";
const TTL = 3;
const etcd = await startEtcd(t);
const kv = clientFor(KV, "grpc", etcd.url);
const lease = clientFor(Lease, "grpc", etcd.url);

/** The registrations in etcd: key → value and lease. */
async function registered(): Promise<Map<string, { value: string; lease: bigint }>> {
  const res = await kv.range({ key: enc(`${PREFIX}/`), rangeEnd: enc(`${PREFIX}0`) });
  return new Map(res.kvs.map((x) => [dec(x.key), { value: dec(x.value), lease: x.lease }]));
}

const register = (addr: string) => startEdge(t, [`--endpoints=${etcd.endpoint}`, `--resolver-prefix=${PREFIX}`, `--resolver-ttl=${TTL}`, `--advertise-client-url=${addr}`]);
const edgeA = await register("edge-a.test:23790");
const edgeB = await register("edge-b.test:23790");
await waitFor("both proxies registered", async () => (await registered()).size === 2);

/** `etcd grpc-proxy start` registered under the same prefix: the reference for the layout. */
async function startEtcdProxy(addr: string): Promise<{ port: number }> {
  const port = await freePort();
  const proc = spawn("etcd", ["grpc-proxy", "start", `--endpoints=${etcd.endpoint}`, `--listen-addr=127.0.0.1:${port}`,
    `--advertise-client-url=${addr}`, `--resolver-prefix=${PREFIX}`, `--resolver-ttl=${TTL}`], { stdio: "ignore" });
  t.teardown(async () => {
    if (proc.exitCode !== null) return;
    proc.kill("SIGKILL");
    await new Promise((r) => proc.once("exit", r));
  });
  await waitFor("etcd grpc-proxy listening", () => portOpen(port));
  return { port };
}

/** Stops a proxy as a service manager does (SIGTERM) and waits until it has exited. */
async function terminate(edge: EdgeProxy): Promise<void> {
  if (edge.process.exitCode !== null) return;
  const exited = new Promise((r) => edge.process.once("exit", r));
  edge.process.kill("SIGTERM");
  await exited;
}

t.test("key <prefix>/<advertise-client-url>, etcd's value, on a lease of --resolver-ttl", async (t) => {
  const regs = await registered();
  const a = regs.get(`${PREFIX}/edge-a.test:23790`);
  t.ok(a, "A's key");
  t.equal(a?.value, JSON.stringify({ Op: 0, Addr: "edge-a.test:23790", Metadata: JSON.stringify({ name: hostname() }) }));
  const ttl = await lease.leaseTimeToLive({ ID: a!.lease });
  t.equal(ttl.grantedTTL, BigInt(TTL), "the lease's TTL is --resolver-ttl");
  t.ok(ttl.TTL > 0n && ttl.TTL <= BigInt(TTL), `kept alive (${ttl.TTL} s left)`);

  await startEtcdProxy("etcd-proxy.test:1");
  await waitFor("etcd's proxy registered", async () => (await registered()).has(`${PREFIX}/etcd-proxy.test:1`));
  const theirs = (await registered()).get(`${PREFIX}/etcd-proxy.test:1`)!.value;
  t.equal(a?.value.replace("edge-a.test:23790", "etcd-proxy.test:1"), theirs, "the same value etcd's grpc-proxy writes, byte for byte");
});

t.test("member list through a registered proxy lists every registered proxy (and etcd's proxy lists ours)", async (t) => {
  const etcdProxy = await startEtcdProxy("etcd-proxy-2.test:1");
  const want = [
    `0, started, ${hostname()}, , edge-a.test:23790, false`,
    `0, started, ${hostname()}, , edge-b.test:23790, false`,
    `0, started, ${hostname()}, , etcd-proxy-2.test:1, false`,
    `0, started, ${hostname()}, , etcd-proxy.test:1, false`,
  ];
  await waitFor("the member list to list all four", async () => (await etcdctl(edgeA.addr, ["member", "list"])).stdout.split("\n").filter(Boolean).length === 4);
  for (const [name, addr] of [["etcd-edge A", edgeA.addr], ["etcd-edge B", edgeB.addr]] as const) {
    const r = await etcdctl(addr, ["member", "list"]);
    t.same(r.stdout.split("\n").filter(Boolean), want, `${name}: ID 0, the hostname, the registered address, in key order`);
  }
  await waitFor("etcd's proxy to list all four", async () => (await etcdctl(`127.0.0.1:${etcdProxy.port}`, ["member", "list"])).stdout.split("\n").filter(Boolean).length === 4);
  const theirs = (await etcdctl(`127.0.0.1:${etcdProxy.port}`, ["member", "list"])).stdout.split("\n").filter(Boolean).sort();
  t.same(theirs, want, "etcd grpc-proxy reads our registrations (its order is random: sorted here)");
});

t.test("etcd loses the lease (revoked): the proxy registers again on a new lease", async (t) => {
  const before = (await registered()).get(`${PREFIX}/edge-a.test:23790`)!;
  await lease.leaseRevoke({ ID: before.lease });
  t.notOk((await registered()).has(`${PREFIX}/edge-a.test:23790`), "the revoke deleted the key");
  const started = Date.now();
  await waitFor("A registered again", async () => (await registered()).has(`${PREFIX}/edge-a.test:23790`), 10_000);
  const after = (await registered()).get(`${PREFIX}/edge-a.test:23790`)!;
  t.not(after.lease, before.lease, "on a new lease");
  t.equal(after.value, before.value);
  t.ok(Date.now() - started < TTL * 1000 + 1500, `back within a keep-alive period and a retry (${Date.now() - started} ms)`);
  await waitFor("the member list to list A again", async () => (await etcdctl(edgeB.addr, ["member", "list"])).stdout.includes("edge-a.test:23790"));
});

t.test("shutdown (SIGTERM) removes the key at once; member list drops the proxy", async (t) => {
  await terminate(edgeB);
  t.notOk((await registered()).has(`${PREFIX}/edge-b.test:23790`), "gone when the process has exited");
  await waitFor("A's member list without B", async () => !(await etcdctl(edgeA.addr, ["member", "list"])).stdout.includes("edge-b.test"));
  t.pass("B no longer listed");
});

t.test("a killed proxy's key expires at the TTL, not later", async (t) => {
  const { lease: id } = (await registered()).get(`${PREFIX}/edge-a.test:23790`)!;
  // Right after a keep-alive: etcd's clock for the lease starts then.
  const ttlAtKill = (await lease.leaseTimeToLive({ ID: id })).TTL;
  await edgeA.stop(); // SIGKILL: no revoke
  const killed = Date.now();
  t.ok((await registered()).has(`${PREFIX}/edge-a.test:23790`), "still there right after the kill");
  await waitFor("A's key to expire", async () => !(await registered()).has(`${PREFIX}/edge-a.test:23790`), 15_000);
  const lived = Date.now() - killed;
  t.ok(lived <= Number(ttlAtKill) * 1000 + 1500, `gone ${lived} ms after the kill (TTL left then: ${ttlAtKill} s)`);
});
