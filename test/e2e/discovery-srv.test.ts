/**
 * --discovery-srv: the proxy finds etcd through DNS SRV records served by a DNS server on the loopback
 * (test/helpers/dns-srv.ts, reached with --discovery-srv-resolver), then etcdctl put/get work through it.
 * http records need --insecure-discovery (etcd keeps only https ones otherwise); without a usable record the
 * proxy falls back to --endpoints; both lookups failing stops the start (exit 1), as etcd's proxy does.
 */
import t from "tap";
import { makeCerts } from "../helpers/certs.js";
import { startDns } from "../helpers/dns-srv.js";
import { startEtcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { freePort } from "../helpers/ports.js";
import { runEdge, startEdge } from "../helpers/proxy.js";

const dns = await startDns(t);
const etcd = await startEtcd(t);
const etcdPort = Number(etcd.endpoint.split(":")[1]);
/** Nothing listens there: a proxy that used it would fail every call. */
const dead = `127.0.0.1:${await freePort()}`;

async function putGet(t: Tap, addr: string, key: string): Promise<void> {
  const put = await etcdctl(addr, ["put", key, "v"]);
  t.equal(put.code, 0, `put through the proxy: ${put.stderr}`);
  const direct = await etcdctl(etcd.endpoint, ["get", key, "--print-value-only"]);
  t.equal(direct.stdout, "v\n", "the put reached etcd");
  const get = await etcdctl(addr, ["get", key]);
  t.equal(get.stdout, `${key}\nv\n`, "get through the proxy");
}
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

t.test("_etcd-client._tcp with --insecure-discovery: the records are used instead of --endpoints", async (t) => {
  dns.records.set("_etcd-client._tcp.etcd.test", [{ priority: 0, weight: 0, port: etcdPort, target: "localhost." }]);
  const edge = await startEdge(t, [`--endpoints=${dead}`, "--discovery-srv=etcd.test", "--insecure-discovery", `--discovery-srv-resolver=${dns.addr}`]);
  await putGet(t, edge.addr, "srv/plain");
  t.match(edge.output(), /discovered the cluster from DNS SRV records/);
  t.match(edge.output(), `http://localhost:${etcdPort}`);
});

t.test("--discovery-srv-name: _etcd-client-<name>._tcp", async (t) => {
  dns.records.set("_etcd-client-prod._tcp.etcd.test", [{ priority: 0, weight: 0, port: etcdPort, target: "localhost" }]);
  dns.records.set("_etcd-client._tcp.etcd.test", [{ priority: 0, weight: 0, port: Number(dead.split(":")[1]), target: "localhost" }]);
  const edge = await startEdge(t, [`--endpoints=${dead}`, "--discovery-srv=etcd.test", "--discovery-srv-name=prod", "--insecure-discovery", `--discovery-srv-resolver=${dns.addr}`]);
  await putGet(t, edge.addr, "srv/named");
  dns.records.delete("_etcd-client-prod._tcp.etcd.test");
});

t.test("_etcd-client-ssl._tcp: https endpoints, validated without --insecure-discovery", async (t) => {
  const certs = makeCerts(t);
  const tlsEtcd = await startEtcd(t, { tls: { cert: certs.server.cert, key: certs.server.key } });
  const tlsPort = Number(tlsEtcd.endpoint.split(":")[1]);
  dns.records.set("_etcd-client-ssl._tcp.tls.test", [{ priority: 0, weight: 0, port: tlsPort, target: "localhost" }]);
  // An http record beside it is dropped: without --insecure-discovery etcd keeps https endpoints only.
  dns.records.set("_etcd-client._tcp.tls.test", [{ priority: 0, weight: 0, port: etcdPort, target: "localhost" }]);
  const edge = await startEdge(t, [`--endpoints=${dead}`, "--discovery-srv=tls.test", `--cacert=${certs.ca}`, `--discovery-srv-resolver=${dns.addr}`]);
  t.equal((await etcdctl(edge.addr, ["put", "srv/tls", "v"])).code, 0);
  const onTls = await etcdctl(`https://${tlsEtcd.endpoint}`, ["get", "srv/tls", "--print-value-only", `--cacert=${certs.ca}`]);
  t.equal(onTls.stdout, "v\n", "the put went to the https etcd of the -ssl record");
  t.equal((await etcdctl(etcd.endpoint, ["get", "srv/tls", "--print-value-only"])).stdout, "", "not to the http one");
  t.match(edge.output(), `https://localhost:${tlsPort}`);
});

t.test("no usable record (http only, no --insecure-discovery): --endpoints is used, as in etcd", async (t) => {
  dns.records.set("_etcd-client._tcp.fallback.test", [{ priority: 0, weight: 0, port: Number(dead.split(":")[1]), target: "localhost" }]);
  const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, "--discovery-srv=fallback.test", `--discovery-srv-resolver=${dns.addr}`]);
  await putGet(t, edge.addr, "srv/fallback");
  t.match(edge.output(), /no usable endpoint from DNS SRV discovery; using --endpoints/);
});

t.test("neither SRV name exists: exit 1 with both lookup errors, nothing listens", async (t) => {
  const r = await runEdge(["start", `--listen-addr=127.0.0.1:${await freePort()}`, "--discovery-srv=missing.test", `--discovery-srv-resolver=${dns.addr}`]);
  t.equal(r.code, 1, r.out);
  t.match(r.out, /etcd-edge: dns lookup errors: .*_etcd-client-ssl\._tcp\.missing\.test.* and .*_etcd-client\._tcp\.missing\.test/);
  t.notMatch(r.out, /listening on/);
});
