/**
 * --discovery-srv's lookups (src/upstream/client/discovery.ts) against a DNS server on the loopback that
 * the test runs: the SRV names etcd's pkg/srv asks, https before http, priority order, what
 * --insecure-discovery keeps, and the error when both lookups fail.
 */
import { createServer } from "node:net";
import t from "tap";
import { discoverEndpoints, srvNames, srvService } from "../../src/upstream/client/discovery.js";
import { startDns } from "../helpers/dns-srv.js";
import { freePort } from "../helpers/ports.js";

const dns = await startDns(t);
const base = { domain: "etcd.test", serviceName: "", insecure: true, dnsServers: [dns.addr] };

t.test("the SRV names are etcd's (pkg/srv GetSRVService)", async (t) => {
  t.equal(srvService("etcd-client", "", "https"), "etcd-client-ssl");
  t.equal(srvService("etcd-client", "", "http"), "etcd-client");
  t.equal(srvService("etcd-client", "prod", "https"), "etcd-client-ssl-prod");
  t.equal(srvService("etcd-client", "prod", "http"), "etcd-client-prod");
  t.same(srvNames({ domain: "example.com", serviceName: "" }), { https: "_etcd-client-ssl._tcp.example.com", http: "_etcd-client._tcp.example.com" });
  t.same(srvNames({ domain: "example.com", serviceName: "a" }), { https: "_etcd-client-ssl-a._tcp.example.com", http: "_etcd-client-a._tcp.example.com" });
});

t.test("https endpoints first, each list in priority order; --insecure-discovery keeps http ones", async (t) => {
  dns.records.clear();
  dns.records.set("_etcd-client._tcp.etcd.test", [
    { priority: 20, weight: 0, port: 2001, target: "b.etcd.test." },
    { priority: 10, weight: 0, port: 2000, target: "a.etcd.test." },
  ]);
  dns.records.set("_etcd-client-ssl._tcp.etcd.test", [{ priority: 0, weight: 0, port: 2002, target: "c.etcd.test" }]);
  t.same(await discoverEndpoints(base), [
    { url: "https://c.etcd.test:2002", tls: true },
    { url: "http://a.etcd.test:2000", tls: false },
    { url: "http://b.etcd.test:2001", tls: false },
  ], "the trailing dot of a target is dropped");
});

t.test("--discovery-srv-name asks the suffixed names only", async (t) => {
  dns.records.clear();
  dns.records.set("_etcd-client-prod._tcp.etcd.test", [{ priority: 0, weight: 0, port: 2379, target: "prod.etcd.test" }]);
  dns.records.set("_etcd-client._tcp.etcd.test", [{ priority: 0, weight: 0, port: 2379, target: "wrong.etcd.test" }]);
  dns.asked.length = 0;
  t.same(await discoverEndpoints({ ...base, serviceName: "prod" }), [{ url: "http://prod.etcd.test:2379", tls: false }]);
  t.same([...new Set(dns.asked)].sort(), ["_etcd-client-prod._tcp.etcd.test", "_etcd-client-ssl-prod._tcp.etcd.test"]);
});

t.test("without --insecure-discovery: only https endpoints that accept a connection, as etcd validates", async (t) => {
  const listening = createServer((s) => s.destroy());
  await new Promise<void>((r) => listening.listen(0, "127.0.0.1", r));
  t.teardown(() => new Promise<void>((r) => listening.close(() => r())));
  const open = (listening.address() as { port: number }).port;
  const closed = await freePort();
  dns.records.clear();
  dns.records.set("_etcd-client-ssl._tcp.etcd.test", [
    { priority: 0, weight: 0, port: closed, target: "127.0.0.1" },
    { priority: 1, weight: 0, port: open, target: "127.0.0.1" },
  ]);
  dns.records.set("_etcd-client._tcp.etcd.test", [{ priority: 0, weight: 0, port: open, target: "127.0.0.1" }]);
  t.same(await discoverEndpoints({ ...base, insecure: false }), [{ url: `https://127.0.0.1:${open}`, tls: true }]);
  t.same((await discoverEndpoints(base)).map((e) => e.url), [`https://127.0.0.1:${closed}`, `https://127.0.0.1:${open}`, `http://127.0.0.1:${open}`]);
});

t.test("one lookup failing is fine; both failing is an error naming both", async (t) => {
  dns.records.clear();
  dns.records.set("_etcd-client._tcp.etcd.test", [{ priority: 0, weight: 0, port: 1, target: "x.etcd.test" }]);
  t.same(await discoverEndpoints(base), [{ url: "http://x.etcd.test:1", tls: false }]);
  dns.records.clear();
  await t.rejects(discoverEndpoints(base), { message: /^dns lookup errors: .*_etcd-client-ssl\._tcp\.etcd\.test.* and .*_etcd-client\._tcp\.etcd\.test/ });
});
