/**
 * TLS on both hops, driven by the real tools: etcd with client-certificate auth behind the proxy, and the
 * proxy's own listener with a certificate, required client certificates, a CRL and --auto-tls, checked with
 * etcdctl and curl (TLS with ALPN h2 and HTTP/1.1). Certificates are made per run (test/helpers/certs.ts).
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t, { type Test } from "tap";
import { makeCerts, type Pair } from "../helpers/certs.js";
import { startEtcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { freePort } from "../helpers/ports.js";
import { runEdge, startEdge } from "../helpers/proxy.js";

const certs = makeCerts(t);
const plainEtcd = await startEtcd(t);

/** etcdctl flags for a TLS endpoint: trust our CA, optionally present a client certificate. */
const tlsArgs = (client?: Pair) => [`--cacert=${certs.ca}`, ...(client ? [`--cert=${client.cert}`, `--key=${client.key}`] : [])];
// Short timeouts: the refusal cases must fail, and fast; a working call answers in milliseconds.
const QUICK = ["--dial-timeout=3s", "--command-timeout=5s"];

type Tap = Test;

async function putGet(t: Tap, endpoint: string, extra: string[], key: string): Promise<void> {
  const put = await etcdctl(endpoint, [...QUICK, ...extra, "put", key, `value of ${key}`]);
  t.equal(put.code, 0, `put ${key}: ${put.stderr}`);
  t.equal(put.stdout.trim(), "OK");
  const get = await etcdctl(endpoint, [...QUICK, ...extra, "get", key, "--print-value-only"]);
  t.equal(get.code, 0, `get ${key}: ${get.stderr}`);
  t.equal(get.stdout.trim(), `value of ${key}`);
}

function curl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn("curl", ["-sS", "--max-time", "10", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d: Buffer) => { stdout += d.toString(); });
    proc.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
    proc.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

t.test("(a) etcd with TLS and client-cert auth behind a cleartext proxy", async (t) => {
  const etcd = await startEtcd(t, { tls: { cert: certs.server.cert, key: certs.server.key, ca: certs.ca } });
  const edge = await startEdge(t, [`--endpoints=https://${etcd.endpoint}`, `--cert=${certs.proxyClient.cert}`, `--key=${certs.proxyClient.key}`, `--cacert=${certs.ca}`]);
  await putGet(t, edge.addr, [], "tls-a");
  const direct = await etcdctl(`https://${etcd.endpoint}`, [...QUICK, ...tlsArgs(certs.client), "get", "tls-a", "--print-value-only"]);
  t.equal(direct.stdout.trim(), "value of tls-a", "the write reached the TLS etcd");
  const noCert = await etcdctl(`https://${etcd.endpoint}`, [...QUICK, ...tlsArgs(), "get", "tls-a"]);
  t.not(noCert.code, 0, "etcd itself refuses a client without a certificate (so the proxy's certificate did the work)");
});

t.test("(b) listener with --cert-file/--key-file: etcdctl, curl over h2 and HTTP/1.1", async (t) => {
  const edge = await startEdge(t, [`--endpoints=${plainEtcd.endpoint}`, `--cert-file=${certs.server.cert}`, `--key-file=${certs.server.key}`], { tls: true });
  t.equal(edge.url.startsWith("https://"), true);
  await putGet(t, edge.url, tlsArgs(), "tls-b");
  const untrusted = await etcdctl(edge.url, [...QUICK, "get", "tls-b"]);
  t.not(untrusted.code, 0, "a client that does not trust our CA fails verification");

  const h2 = await curl(["-v", "--http2", "--cacert", certs.ca, "-w", "\n%{http_code} %{http_version}", `${edge.url}/health`]);
  t.equal(h2.code, 0, h2.stderr);
  const [body2, status2] = h2.stdout.split("\n");
  t.match(body2, /"health":"true"/, "health over TLS h2");
  t.equal(status2, "200 2", "status 200 over HTTP/2");
  t.match(h2.stderr, /ALPN[:,] server accepted (to use )?h2/, "ALPN chose h2");

  const h1 = await curl(["--http1.1", "--cacert", certs.ca, "-w", "\n%{http_code} %{http_version}", `${edge.url}/health`]);
  t.equal(h1.code, 0, h1.stderr);
  const [body1, status1] = h1.stdout.split("\n");
  t.match(body1, /"health":"true"/, "health over TLS HTTP/1.1");
  t.equal(status1, "200 1.1", "status 200 over HTTP/1.1");
});

t.test("(c) --trusted-ca-file requires a client certificate", async (t) => {
  const edge = await startEdge(t, [`--endpoints=${plainEtcd.endpoint}`, `--cert-file=${certs.server.cert}`, `--key-file=${certs.server.key}`, `--trusted-ca-file=${certs.ca}`], { tls: true });
  await putGet(t, edge.url, tlsArgs(certs.client), "tls-c");
  const without = await etcdctl(edge.url, [...QUICK, ...tlsArgs(), "get", "tls-c"]);
  t.not(without.code, 0, "etcdctl without a client certificate is refused");
  t.notMatch(without.stdout, /tls-c/, "and gets no data");
  const curlWithout = await curl(["--cacert", certs.ca, `${edge.url}/health`]);
  t.not(curlWithout.code, 0, "curl without a client certificate is refused too");
  // Every door, every HTTP version: without a certificate no request completes; with one, each answers.
  const requests: [string, string[]][] = [
    ["/health", []],
    ["/metrics", []],
    ["/v3/kv/range", ["-d", '{"key":"dGxzLWM="}']],
    ["/etcdserverpb.KV/Range", ["-H", "content-type: application/json", "-d", '{"key":"dGxzLWM="}']],
    ["/etcdserverpb.KV/Range", ["-H", "content-type: application/grpc-web+proto", "--data-binary", "@-"]],
  ];
  for (const version of ["--http1.1", "--http2"]) {
    for (const [path, extra] of requests) {
      const name = `${path} over ${version.slice(2)} (${extra.join(" ").slice(0, 40)})`;
      const refused = await curl([version, "--cacert", certs.ca, ...extra, `${edge.url}${path}`]);
      t.not(refused.code, 0, `without a certificate: ${name} is refused`);
      t.equal(refused.stdout, "", "and answers nothing");
      const served = await curl([version, "-o", "/dev/null", "-w", "%{http_code} %{http_version}", "--cacert", certs.ca, "--cert", certs.client.cert, "--key", certs.client.key, ...extra, `${edge.url}${path}`]);
      t.equal(served.code, 0, `with one: ${name} is served`);
      t.match(served.stdout, version === "--http2" ? /^200 2$/ : /^200 1\.1$/, `HTTP 200 over ${version.slice(2)}`);
    }
  }
});

t.test("(d) --client-crl-file refuses a revoked client certificate", async (t) => {
  const edge = await startEdge(t, [
    `--endpoints=${plainEtcd.endpoint}`, `--cert-file=${certs.server.cert}`, `--key-file=${certs.server.key}`,
    `--trusted-ca-file=${certs.ca}`, `--client-crl-file=${certs.crl}`,
  ], { tls: true });
  await putGet(t, edge.url, tlsArgs(certs.client), "tls-d");
  const revoked = await etcdctl(edge.url, [...QUICK, ...tlsArgs(certs.revoked), "get", "tls-d"]);
  t.not(revoked.code, 0, "the revoked certificate is refused");
  t.notMatch(revoked.stdout, /tls-d/, "and gets no data");
  const curlRevoked = await curl(["--cacert", certs.ca, "--cert", certs.revoked.cert, "--key", certs.revoked.key, `${edge.url}/health`]);
  t.not(curlRevoked.code, 0, "curl with the revoked certificate is refused");
  const curlGood = await curl(["--cacert", certs.ca, "--cert", certs.client.cert, "--key", certs.client.key, `${edge.url}/health`]);
  t.equal(curlGood.code, 0, curlGood.stderr);
  t.match(curlGood.stdout, /"health":"true"/, "curl with a good certificate gets health");
});

/**
 * A revoked client gets nothing done on any protocol: its etcdctl put never reaches etcd, curl gets no
 * /health over HTTP/2 or HTTP/1.1; a good client of the same CA works.
 */
async function refusesOnlyRevoked(t: Tap, o: { server: Pair; ca: string; crl: string; good: Pair; revoked: Pair; key: string }): Promise<void> {
  const edge = await startEdge(t, [
    `--endpoints=${plainEtcd.endpoint}`, `--cert-file=${o.server.cert}`, `--key-file=${o.server.key}`,
    `--trusted-ca-file=${o.ca}`, `--client-crl-file=${o.crl}`,
  ], { tls: true });
  const as = (c: Pair) => [`--cacert=${o.ca}`, `--cert=${c.cert}`, `--key=${c.key}`];
  const put = await etcdctl(edge.url, [...QUICK, ...as(o.revoked), "put", o.key, "from a revoked client"]);
  t.not(put.code, 0, "the revoked certificate's put is refused");
  const get = await etcdctl(edge.url, [...QUICK, ...as(o.good), "get", o.key, "--print-value-only"]);
  t.equal(get.code, 0, `a good certificate works: ${get.stderr}`);
  t.equal(get.stdout.trim(), "", "the revoked client's put never reached etcd");
  await putGet(t, edge.url, as(o.good), o.key);
  for (const version of ["--http2", "--http1.1"]) {
    const curlArgs = (c: Pair) => [version, "--cacert", o.ca, "--cert", c.cert, "--key", c.key, `${edge.url}/health`];
    const revoked = await curl(curlArgs(o.revoked));
    t.not(revoked.code, 0, `curl ${version} with the revoked certificate is refused`);
    t.notMatch(revoked.stdout, /health/, "and gets no answer");
    const good = await curl(curlArgs(o.good));
    t.match(good.stdout, /"health":"true"/, `curl ${version} with a good certificate gets health: ${good.stderr}`);
  }
  t.match(edge.output(), /certificate serial [0-9A-F]+ is revoked/, "the refusal is logged");
}

t.test("(d2) a DER CRL, as etcd reads it", async (t) => {
  const der = join(certs.dir, "crl.der");
  execFileSync("openssl", ["crl", "-in", certs.crl, "-outform", "DER", "-out", der]);
  await refusesOnlyRevoked(t, { server: certs.server, ca: certs.ca, crl: der, good: certs.client, revoked: certs.revoked, key: "tls-d2" });
});

t.test("(d3) a CRL past its nextUpdate still refuses only the certificates it lists (etcd does not check nextUpdate)", async (t) => {
  // certs.dir holds the test CA's `openssl ca` state (test/helpers/certs.ts), with `revoked` revoked.
  execFileSync("openssl", ["ca", "-config", "ca.cnf", "-gencrl", "-crl_lastupdate", "20200101000000Z", "-crl_nextupdate", "20200102000000Z", "-out", "expired.pem"],
    { cwd: certs.dir, stdio: "ignore" });
  await refusesOnlyRevoked(t, { server: certs.server, ca: certs.ca, crl: join(certs.dir, "expired.pem"), good: certs.client, revoked: certs.revoked, key: "tls-d3" });
});

const ETCD_FIXTURES = "/usr/share/gocode/src/go.etcd.io/etcd/integration/fixtures";
t.test("(d4) etcd's own fixtures: client-nocn.revoke.crl (DER, expired in 2021) revokes server-revoked.crt", {
  skip: !existsSync(join(ETCD_FIXTURES, "client-nocn.revoke.crl")) && "etcd's fixtures not installed (golang-etcd-server-dev)",
}, async (t) => {
  const f = (name: string) => join(ETCD_FIXTURES, name);
  await refusesOnlyRevoked(t, {
    server: { cert: f("server.crt"), key: f("server.key.insecure") }, ca: f("ca.crt"), crl: f("client-nocn.revoke.crl"),
    good: { cert: f("client-nocn.crt"), key: f("client-nocn.key.insecure") },
    revoked: { cert: f("server-revoked.crt"), key: f("server-revoked.key.insecure") }, key: "tls-d4",
  });
});

t.test("(e) --auto-tls writes its certificate under <data-dir>/fixtures/proxy", async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), "etcd-edge-autotls-"));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const edge = await startEdge(t, [`--endpoints=${plainEtcd.endpoint}`, "--auto-tls", `--data-dir=${dataDir}`], { tls: true });
  // etcdctl dials an https endpoint in cleartext unless --insecure-transport=false or a CA/cert is given.
  await putGet(t, edge.url, ["--insecure-transport=false", "--insecure-skip-tls-verify"], "tls-e");
  t.ok(existsSync(join(dataDir, "fixtures", "proxy", "cert.pem")), "cert.pem written");
  t.ok(existsSync(join(dataDir, "fixtures", "proxy", "key.pem")), "key.pem written");
  const verified = await etcdctl(edge.url, [...QUICK, ...tlsArgs(), "get", "tls-e"]);
  t.not(verified.code, 0, "the self-signed certificate is not trusted by our CA (it really is the auto one)");
});

t.test("(f) an upstream --cert with a CommonName stops the proxy with a clear message", async (t) => {
  const etcd = { endpoint: `127.0.0.1:${await freePort()}` };
  const res = await runEdge(["start", `--listen-addr=127.0.0.1:${await freePort()}`, `--endpoints=https://${etcd.endpoint}`,
    `--cert=${certs.client.cert}`, `--key=${certs.client.key}`, `--cacert=${certs.ca}`]);
  t.equal(res.code, 1, "exits 1, as etcd's proxy does");
  t.notMatch(res.out, /listening on/, "before listening");
  t.match(res.out, /--cert/, "names the flag");
  t.match(res.out, "cert has non empty Common Name (etcdctl)", "etcd's words (its e2e suite waits for them), with the CN");
  t.match(res.out, /empty CN/, "says what to do");
});

t.test("(g) --client-crl-file without listener TLS is accepted and has no effect, as in etcd", async (t) => {
  const edge = await startEdge(t, [`--endpoints=${plainEtcd.endpoint}`, `--client-crl-file=${certs.crl}`]);
  await putGet(t, edge.addr, [], "tls-g");
  t.match(edge.output(), /--client-crl-file has no effect/, "one warning at start");
});
