/**
 * Certificates replaced on disk are used without a restart (config/tls-reload.ts), as etcd reads its
 * files for every new connection: the listener's --cert-file/--key-file/--trusted-ca-file (new
 * connections get the new certificate and CA, open ones keep going), and --cert/--key/--cacert towards
 * etcd (new sessions use the new files). A replacement that cannot serve is not taken: the previous
 * certificate stays, with a warning. A certificate that cannot serve its role is refused at start.
 * Certificates are made with openssl (test/helpers/certs.ts): two CAs, A and B.
 */
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import t from "tap";
import { KV } from "../../gen/etcdserverpb/rpc_pb.js";
import { extraLeaf, makeCerts, type TestCerts } from "../helpers/certs.js";
import { clientFor, enc } from "../helpers/clients.js";
import { startEtcd } from "../helpers/etcd.js";
import { waitFor } from "../helpers/ports.js";
import { runEdge, startEdge } from "../helpers/proxy.js";

const A = makeCerts(t);
const B = makeCerts(t);
const fingerprint = (path: string) => new X509Certificate(readFileSync(path)).fingerprint256;

/** Replaces `to` with a copy of `from` the way certificate tools do: a new file renamed over the old one. */
function replace(from: string, to: string): void {
  copyFileSync(from, `${to}.new`);
  renameSync(`${to}.new`, to);
}

interface Seen { fingerprint: string; status: number }

/**
 * GET /health over a new TLS connection (ALPN h2), trusting both CAs, with `client` as the client
 * certificate: the certificate the listener presented and the answer; rejects when the handshake is refused.
 */
function health(port: number, client?: { cert: string; key: string }): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://localhost:${port}`, {
      ca: [readFileSync(A.ca), readFileSync(B.ca)],
      ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}),
    });
    const timer = setTimeout(() => { session.destroy(); reject(new Error("no answer within 3 s")); }, 3_000);
    session.on("close", () => { clearTimeout(timer); reject(new Error("connection closed")); });
    session.on("error", (err) => { session.destroy(); reject(err); });
    const req = session.request({ ":path": "/health" });
    req.on("response", (h) => {
      const seen = { fingerprint: (session.socket as import("node:tls").TLSSocket).getPeerCertificate().fingerprint256, status: Number(h[":status"]) };
      req.resume();
      req.on("end", () => { session.close(); resolve(seen); });
    });
    req.on("error", (err) => { session.destroy(); reject(err); });
    req.end();
  });
}

function filesFrom(certs: TestCerts, dir: string, pair: "server" | "proxyClient"): void {
  replace(certs[pair].key, join(dir, "key.pem"));
  replace(certs[pair].cert, join(dir, "cert.pem"));
  replace(certs.ca, join(dir, "ca.pem"));
}

t.test("listener: a new certificate and CA on disk serve new connections, open ones keep theirs", async (t) => {
  const etcd = await startEtcd(t);
  const dir = mkdtempSync(join(tmpdir(), "etcd-edge-reload-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  filesFrom(A, dir, "server");
  const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`, `--cert-file=${join(dir, "cert.pem")}`, `--key-file=${join(dir, "key.pem")}`, `--trusted-ca-file=${join(dir, "ca.pem")}`], { tls: true });

  const first = await health(edge.port, A.client);
  t.same(first, { fingerprint: fingerprint(A.server.cert), status: 200 }, "A's certificate, A's client accepted");
  await t.rejects(health(edge.port, B.client), "B's client refused: not signed by the trusted CA");
  // A connection opened before the change, kept open across it.
  const open = http2.connect(`https://localhost:${edge.port}`, { ca: readFileSync(A.ca), cert: readFileSync(A.client.cert), key: readFileSync(A.client.key) });
  t.teardown(() => open.destroy());
  open.on("error", () => {});

  filesFrom(B, dir, "server");
  await waitFor("the listener to present B's certificate", async () => (await health(edge.port, B.client).catch(() => undefined))?.fingerprint === fingerprint(B.server.cert), 10_000);
  t.pass("B's certificate on new connections, and B's client accepted");
  await t.rejects(health(edge.port, A.client), "A's client is refused now: the trusted CA is B's");
  const status = await new Promise<number>((resolve, reject) => {
    const req = open.request({ ":path": "/health" });
    req.on("response", (h) => { req.resume(); resolve(Number(h[":status"])); });
    req.on("error", reject);
    req.end();
  });
  t.equal(status, 200, "the connection opened before the change still works");
  t.match(edge.output(), /listener TLS: reloaded/, "the reload is logged");

  // A replacement that cannot serve (no serverAuth) is not taken: B's certificate stays.
  const clientOnly = extraLeaf(B, "client-only", "/CN=localhost", "clientAuth");
  replace(clientOnly.key, join(dir, "key.pem"));
  replace(clientOnly.cert, join(dir, "cert.pem"));
  await waitFor("the refusal to be logged", () => /keeping the certificate in use: --cert-file .* lacks serverAuth/.test(edge.output()), 10_000);
  t.equal((await health(edge.port, B.client)).fingerprint, fingerprint(B.server.cert), "B's certificate still serves");
});

t.test("upstream: new sessions to etcd use --cert/--key as they are now", async (t) => {
  // etcd trusts only CA A for client certificates; the proxy starts with B's (untrusted) client certificate.
  const etcd = await startEtcd(t, { tls: { cert: A.server.cert, key: A.server.key, ca: A.ca } });
  const dir = mkdtempSync(join(tmpdir(), "etcd-edge-reload-up-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  filesFrom(B, dir, "proxyClient");
  replace(A.ca, join(dir, "ca.pem"));
  const edge = await startEdge(t, [`--endpoints=https://${etcd.endpoint}`, `--cert=${join(dir, "cert.pem")}`, `--key=${join(dir, "key.pem")}`, `--cacert=${join(dir, "ca.pem")}`]);
  const kv = clientFor(KV, "grpc", edge.url);
  await t.rejects(kv.put({ key: enc("reload/k"), value: enc("v") }, { timeoutMs: 3_000 }), "etcd refuses B's client certificate");
  replace(A.proxyClient.key, join(dir, "key.pem"));
  replace(A.proxyClient.cert, join(dir, "cert.pem"));
  await waitFor("a Put through the proxy to succeed", async () => {
    await kv.put({ key: enc("reload/k"), value: enc("v") }, { timeoutMs: 2_000 });
    return true;
  }, 15_000);
  t.pass("with A's client certificate on disk, calls go through, without a restart");
  t.match(edge.output(), /TLS to etcd: reloaded/);
});

t.test("a certificate that cannot serve its role stops the start, naming the problem", async (t) => {
  const clientOnly = extraLeaf(A, "listener-client-only", "/CN=localhost", "clientAuth");
  const listener = await runEdge(["start", `--cert-file=${clientOnly.cert}`, `--key-file=${clientOnly.key}`]);
  t.equal(listener.code, 2, listener.out);
  t.match(listener.out, `--cert-file ${clientOnly.cert}: the certificate cannot be a server certificate: its extended key usage (clientAuth) lacks serverAuth`);
  const serverOnly = extraLeaf(A, "upstream-server-only", "/O=etcd-edge proxy", "serverAuth");
  const upstream = await runEdge(["start", "--endpoints=https://127.0.0.1:2379", `--cert=${serverOnly.cert}`, `--key=${serverOnly.key}`, `--cacert=${A.ca}`]);
  t.equal(upstream.code, 2, upstream.out);
  t.match(upstream.out, `--cert ${serverOnly.cert}: the certificate cannot be a client certificate: its extended key usage (serverAuth) lacks clientAuth, so etcd would refuse it`);
});
