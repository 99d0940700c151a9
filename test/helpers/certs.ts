/**
 * Certificates for TLS tests, made with openssl in a temp dir that is removed when the test ends (keys are
 * never committed). One CA signs: a server certificate for 127.0.0.1/localhost, a client certificate with an
 * empty CN (the proxy→etcd hop: etcd would take a CN as the user of every request), a client certificate for
 * etcdctl, and one more client certificate that the CRL revokes.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Pair {
  cert: string;
  key: string;
}

export interface TestCerts {
  dir: string;
  /** The CA certificate (PEM path). */
  ca: string;
  /** For etcd and the proxy listener: SANs localhost, 127.0.0.1, ::1; serverAuth and clientAuth. */
  server: Pair;
  /** Empty CN, for the proxy's upstream --cert/--key. */
  proxyClient: Pair;
  /** CN=etcdctl, for etcdctl against a listener that asks for client certificates. */
  client: Pair;
  /** CN=revoked, listed in `crl`. */
  revoked: Pair;
  /** A CRL signed by the CA that revokes `revoked`. */
  crl: string;
}

interface Tap { teardown(fn: () => unknown): void }

const openssl = (dir: string, args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });

export function makeCerts(t: Tap | undefined): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), "etcd-edge-certs-"));
  t?.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // EC P-256 keys: generated in milliseconds, accepted by Go (etcd, etcdctl), Node and curl.
  const key = (name: string) => openssl(dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`]);
  writeFileSync(join(dir, "ext.cnf"), [
    "[server]", "basicConstraints=CA:false", "keyUsage=critical,digitalSignature,keyEncipherment", "extendedKeyUsage=serverAuth,clientAuth",
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1", "authorityKeyIdentifier=keyid",
    "[client]", "basicConstraints=CA:false", "keyUsage=critical,digitalSignature,keyEncipherment", "extendedKeyUsage=clientAuth",
    "authorityKeyIdentifier=keyid",
    "",
  ].join("\n"));
  key("ca");
  openssl(dir, ["req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=etcd-edge test CA", "-days", "2", "-out", "ca.pem", "-config", "/dev/null",
    "-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-addext", "subjectKeyIdentifier=hash"]);
  let serial = 0x1000;
  const leaf = (name: string, subject: string, profile: "server" | "client"): Pair => {
    key(name);
    openssl(dir, ["req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`, "-config", "/dev/null"]);
    openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", String(serial++), "-days", "2",
      "-extfile", "ext.cnf", "-extensions", profile, "-out", `${name}.pem`]);
    return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  };
  const server = leaf("server", "/CN=localhost", "server");
  // An empty subject CN: only an O, so etcd sees no user name in it.
  const proxyClient = leaf("proxy-client", "/O=etcd-edge proxy", "client");
  const client = leaf("client", "/CN=etcdctl", "client");
  const revoked = leaf("revoked", "/CN=revoked", "client");
  // `openssl ca` keeps its state in an index file; revoking adds the certificate to it, -gencrl signs the list.
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "crlnumber"), "01\n");
  writeFileSync(join(dir, "ca.cnf"), [
    "[ca]", "default_ca=test_ca",
    "[test_ca]", `dir=${dir}`, "database=$dir/index.txt", "certificate=$dir/ca.pem", "private_key=$dir/ca.key",
    "crlnumber=$dir/crlnumber", "default_md=sha256", "default_crl_days=2", "new_certs_dir=$dir", "policy=any",
    "[any]", "commonName=optional",
    "",
  ].join("\n"));
  openssl(dir, ["ca", "-config", "ca.cnf", "-revoke", revoked.cert]);
  openssl(dir, ["ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem"]);
  return { dir, ca: join(dir, "ca.pem"), server, proxyClient, client, revoked, crl: join(dir, "crl.pem") };
}

/**
 * One more leaf certificate signed by the CA of `certs`, for the checks of a certificate's role:
 * `extendedKeyUsage` as openssl writes it ("serverAuth", "clientAuth", "serverAuth,clientAuth"), or
 * undefined for none. SANs localhost and 127.0.0.1.
 */
export function extraLeaf(certs: TestCerts, name: string, subject: string, extendedKeyUsage: string | undefined): Pair {
  const dir = certs.dir;
  writeFileSync(join(dir, `${name}.cnf`), [
    "[leaf]", "basicConstraints=CA:false", "keyUsage=critical,digitalSignature,keyEncipherment",
    ...(extendedKeyUsage ? [`extendedKeyUsage=${extendedKeyUsage}`] : []),
    "subjectAltName=DNS:localhost,IP:127.0.0.1", "authorityKeyIdentifier=keyid", "",
  ].join("\n"));
  openssl(dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`]);
  openssl(dir, ["req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`, "-config", "/dev/null"]);
  openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", String(0x2000 + Math.floor(Math.random() * 1e9)), "-days", "2",
    "-extfile", `${name}.cnf`, "-extensions", "leaf", "-out", `${name}.pem`]);
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}
