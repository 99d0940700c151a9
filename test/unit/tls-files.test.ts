/**
 * src/config/tls-files.ts: what the TLS flags load, and what they refuse, as etcd's proxy does.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import t from "tap";
import { FlagError } from "../../src/config/flags.js";
import type { ListenerTlsFiles } from "../../src/config/options.js";
import { loadListenerTls, loadUpstreamTls } from "../../src/config/tls-files.js";
import { extraLeaf, makeCerts } from "../helpers/certs.js";

const certs = makeCerts(t);
const base: ListenerTlsFiles = { autoTls: false, minVersion: "TLSv1.2", selfSignedCertValidityYears: 1 };

t.test("--client-crl-file without --trusted-ca-file: accepted, one warning, the file is not read", async (t) => {
  for (const files of [
    { ...base, clientCrlFile: "/does/not/exist.crl" },
    { ...base, clientCrlFile: "/does/not/exist.crl", certFile: certs.server.cert, keyFile: certs.server.key },
  ]) {
    const warnings: string[] = [];
    const tls = await loadListenerTls(files, "/nonexistent", (l) => warnings.push(l));
    t.equal(tls?.crl, undefined);
    t.equal(warnings.length, 1);
    t.match(warnings[0], /--client-crl-file has no effect without --trusted-ca-file/);
  }
});

t.test("--client-crl-file with --trusted-ca-file: PEM or DER, a bad file stops the start", async (t) => {
  const der = join(certs.dir, "crl.der");
  execFileSync("openssl", ["crl", "-in", certs.crl, "-outform", "DER", "-out", der]);
  const files = { ...base, certFile: certs.server.cert, keyFile: certs.server.key, trustedCaFile: certs.ca };
  const warnings: string[] = [];
  for (const crl of [certs.crl, der]) {
    const tls = await loadListenerTls({ ...files, clientCrlFile: crl }, "/nonexistent", (l) => warnings.push(l));
    t.equal(tls?.crl?.size, 1, crl);
  }
  t.same(warnings, []);
  await t.rejects(loadListenerTls({ ...files, clientCrlFile: certs.ca }, "/nonexistent", () => {}), FlagError, "a certificate is not a CRL");
  await t.rejects(loadListenerTls({ ...files, clientCrlFile: join(certs.dir, "nope.crl") }, "/nonexistent", () => {}), { message: /cannot read/ });
});

t.test("an upstream --cert with a CN: etcd's words, and not a flag error (etcd exits 1)", async (t) => {
  const err = await loadUpstreamTls({ cert: certs.client.cert, key: certs.client.key, insecureSkipVerify: false }).catch((e: unknown) => e);
  t.type(err, Error);
  t.notOk(err instanceof FlagError);
  t.match((err as Error).message, "cert has non empty Common Name (etcdctl)");
  const ok = await loadUpstreamTls({ cert: certs.proxyClient.cert, key: certs.proxyClient.key, insecureSkipVerify: false });
  t.ok(ok.cert, "an empty CN is fine");
});

t.test("a certificate whose extended key usage does not fit its role is refused at start, naming the problem", async (t) => {
  const serverOnly = extraLeaf(certs, "server-only", "/O=etcd-edge proxy", "serverAuth");
  const clientOnly = extraLeaf(certs, "client-only", "/CN=localhost", "clientAuth");
  const noUsage = extraLeaf(certs, "no-eku", "/O=etcd-edge proxy", undefined);
  const both = extraLeaf(certs, "both", "/O=etcd-edge proxy", "serverAuth,clientAuth");
  // --cert: etcd refuses a client certificate that does not allow clientAuth.
  const upstream = await loadUpstreamTls({ cert: serverOnly.cert, key: serverOnly.key, insecureSkipVerify: false }).catch((e: unknown) => e);
  t.type(upstream, FlagError);
  t.match((upstream as Error).message, `--cert ${serverOnly.cert}: the certificate cannot be a client certificate: its extended key usage (serverAuth) lacks clientAuth, so etcd would refuse it`);
  // --cert-file: clients refuse a server certificate that does not allow serverAuth.
  const listener = await loadListenerTls({ ...base, certFile: clientOnly.cert, keyFile: clientOnly.key }, "/nonexistent", () => {}).catch((e: unknown) => e);
  t.type(listener, FlagError);
  t.match((listener as Error).message, `--cert-file ${clientOnly.cert}: the certificate cannot be a server certificate: its extended key usage (clientAuth) lacks serverAuth`);
  // No extension, or both usages: fine for either role, as in Go.
  for (const pair of [noUsage, both]) {
    t.ok((await loadUpstreamTls({ cert: pair.cert, key: pair.key, insecureSkipVerify: false })).cert, `--cert ${pair.cert}`);
    t.ok(await loadListenerTls({ ...base, certFile: pair.cert, keyFile: pair.key }, "/nonexistent", () => {}), `--cert-file ${pair.cert}`);
  }
  t.ok(await loadListenerTls({ ...base, certFile: serverOnly.cert, keyFile: serverOnly.key }, "/nonexistent", () => {}), "a serverAuth-only certificate serves the listener");
  t.ok((await loadUpstreamTls({ cert: certs.proxyClient.cert, key: certs.proxyClient.key, insecureSkipVerify: false })).cert, "a clientAuth-only one goes to etcd");
});
