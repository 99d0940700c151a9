/**
 * etcdctl's per-endpoint commands send the whole endpoint URL as `:authority` ("http://127.0.0.1:2379"),
 * which node:http2 refuses on its own (RST_STREAM PROTOCOL_ERROR) and etcd accepts. Through the proxy,
 * cleartext and TLS, they must answer as etcd does; so must a Node client that sends such an authority,
 * whether its request comes with the preface or after the server's SETTINGS (src/listener/sniff.ts).
 */
import * as http2 from "node:http2";
import { readFileSync } from "node:fs";
import t, { type Test } from "tap";
import { makeCerts } from "../helpers/certs.js";
import { startEtcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { startEdge } from "../helpers/proxy.js";

const certs = makeCerts(t);
const etcd = await startEtcd(t);
const plain = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
const tls = await startEdge(t, [`--endpoints=${etcd.endpoint}`, `--cert-file=${certs.server.cert}`, `--key-file=${certs.server.key}`], { tls: true });

const QUICK = ["--dial-timeout=3s", "--command-timeout=5s"];

async function ctlJson(t: Test, url: string, args: string[], extra: string[] = []): Promise<unknown> {
  const r = await etcdctl(url, [...QUICK, ...extra, ...args]);
  t.equal(r.code, 0, `${args.join(" ")} against ${url}: ${r.stderr}`);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

/** Every key path of a JSON value, with the type at its end: the output's shape. */
function shape(v: unknown, at = ""): string[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => shape(x, `${at}[${i}]`));
  if (v !== null && typeof v === "object") return Object.entries(v).flatMap(([k, x]) => shape(x, `${at}.${k}`)).sort();
  return [`${at}: ${typeof v}`];
}

interface Status { Endpoint: string; Status: { header: { cluster_id: number; member_id: number; revision: number }; version: string; leader: number } }
interface HashKV { Endpoint: string; HashKV: { header: { revision: number }; hash: number; compact_revision: number } }

for (const [name, edge, extra] of [["cleartext", plain, []], ["TLS", tls, [`--cacert=${certs.ca}`]]] as const) {
  t.test(`${name}: endpoint status, endpoint hashkv and defrag with a URL endpoint answer as etcd does`, async (t) => {
    t.equal(edge.url.startsWith(name === "TLS" ? "https://" : "http://"), true);
    const [direct] = await ctlJson(t, etcd.url, ["endpoint", "status", "-w", "json"]) as Status[];
    const [proxied] = await ctlJson(t, edge.url, ["endpoint", "status", "-w", "json"], [...extra]) as Status[];
    t.equal(proxied?.Endpoint, edge.url, "etcdctl names the URL it was given");
    t.same(shape(proxied), shape(direct), "same JSON shape");
    const stable = (s: Status | undefined) => s && { cluster_id: s.Status.header.cluster_id, member_id: s.Status.header.member_id, revision: s.Status.header.revision, version: s.Status.version, leader: s.Status.leader };
    t.same(stable(proxied), stable(direct), "etcd's ids, revision, version and leader");

    const [hashDirect] = await ctlJson(t, etcd.url, ["endpoint", "hashkv", "-w", "json"]) as HashKV[];
    const [hashProxied] = await ctlJson(t, edge.url, ["endpoint", "hashkv", "-w", "json"], [...extra]) as HashKV[];
    t.same(shape(hashProxied), shape(hashDirect), "hashkv: same JSON shape");
    t.same(hashProxied && [hashProxied.HashKV.hash, hashProxied.HashKV.header.revision], hashDirect && [hashDirect.HashKV.hash, hashDirect.HashKV.header.revision], "same hash at the same revision");

    const defragDirect = await etcdctl(etcd.url, [...QUICK, "defrag"]);
    const defrag = await etcdctl(edge.url, [...QUICK, ...extra, "defrag"]);
    t.equal(defrag.code, 0, defrag.stderr);
    t.equal(defrag.stdout.replace(edge.url, "<endpoint>"), defragDirect.stdout.replace(etcd.url, "<endpoint>"));
    t.equal(defrag.stdout, `Finished defragmenting etcd member[${edge.url}]\n`);

    // The multi-endpoint form: one endpoint plain, one a URL.
    const both = await etcdctl(`${edge.addr},${edge.url}`, [...QUICK, ...extra, "endpoint", "status"]);
    t.equal(both.code, 0, both.stderr);
    t.equal(both.stdout.split("\n").filter(Boolean).length, 2, "both endpoints answer");
  });

  t.test(`${name}: a Node client with :authority http://x:1 gets GET /health`, async (t) => {
    const ca = name === "TLS" ? readFileSync(certs.ca) : undefined;
    const session = http2.connect(edge.url, ca ? { ca } : {});
    t.teardown(() => session.close());
    session.on("error", () => {});
    const get = () => new Promise<{ status: unknown; body: string }>((resolve, reject) => {
      const req = session.request({ ":path": "/health", ":authority": "http://x:1" });
      let body = "";
      let status: unknown;
      req.on("response", (h) => { status = h[":status"]; });
      req.setEncoding("utf8");
      req.on("data", (d: string) => { body += d; });
      req.on("end", () => resolve({ status, body }));
      req.on("error", reject);
    });
    t.match(await get(), { status: 200, body: /^\{"health":"true","reason":""[,}]/ }, "sent with the preface");
    t.match(await get(), { status: 200, body: /^\{"health":"true","reason":""[,}]/ }, "the next request on the connection (the authority by index)");

    // Waits for the server's SETTINGS before the first request, as grpc-go does: the proxy sends its own
    // and drops the client's ACK of it, which nghttp2 must not see.
    const late = http2.connect(edge.url, ca ? { ca } : {});
    t.teardown(() => late.close());
    late.on("error", () => {});
    await new Promise((r) => late.once("remoteSettings", r));
    const res = await new Promise<unknown>((resolve, reject) => {
      const req = late.request({ ":path": "/health", ":authority": "https://x:1/" });
      req.on("response", (h) => resolve(h[":status"]));
      req.on("error", reject);
      req.resume();
    });
    t.equal(res, 200, "sent after the server's SETTINGS");
    const pinged = await new Promise<boolean>((resolve) => late.ping((err) => resolve(!err)));
    t.equal(pinged, true, "the connection is nghttp2's now, and sound");
  });
}
