/**
 * Reads the TLS files named by the flags into the objects node:tls wants, and makes the --auto-tls
 * certificate. A file that cannot be read, or a certificate that cannot serve its role, stops the proxy
 * with its path in the message, before anything listens; tls-reload.ts reads the files again when they
 * change, with the same checks.
 */
import { mkdir, readFile, writeFile, access } from "node:fs/promises";
import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import { ClientCrl } from "./crl.js";
import { FlagError } from "./flags.js";
import { extendedKeyUsage } from "./x509-usage.js";
import type { ListenerTlsFiles, UpstreamTlsFiles } from "./options.js";

export interface ListenerTls {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  /** --client-crl-file, with --trusted-ca-file only: clients are not asked for a certificate without it. */
  crl?: ClientCrl;
  /** Set with --trusted-ca-file: a client without a certificate signed by `ca` is refused. */
  requireClientCert: boolean;
  ciphers?: string;
  minVersion: "TLSv1.2" | "TLSv1.3";
  maxVersion?: "TLSv1.2" | "TLSv1.3";
}

export interface UpstreamTls {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
  rejectUnauthorized: boolean;
}

async function read(path: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new FlagError(`${flag}: cannot read ${path}: ${(err as Error).message}`);
  }
}

export async function loadUpstreamTls(files: UpstreamTlsFiles): Promise<UpstreamTls> {
  const tls: UpstreamTls = { rejectUnauthorized: !files.insecureSkipVerify };
  if (files.cert) {
    tls.cert = await read(files.cert, "--cert");
    checkUpstreamCert(tls.cert, files.cert);
  }
  if (files.key) tls.key = await read(files.key, "--key");
  if (files.cacert) tls.ca = await read(files.cacert, "--cacert");
  return tls;
}

/** Throws when `pem` cannot be the proxy's client certificate towards etcd. */
export function checkUpstreamCert(pem: Buffer, path: string): void {
  // etcd treats a client certificate's CN as the user of every request that has no token, so a CN
  // would run every proxied request as that user; etcd's proxy refuses it for the same reason (#11970).
  // etcd's words and exit status 1 (not a flag error): etcd's e2e suite waits for that text.
  const cn = commonName(pem);
  if (cn) throw new Error(`--cert: cert has non empty Common Name (${cn}): etcd would run every proxied request as user "${cn}"; use a certificate with an empty CN`);
  const problem = usageProblem(pem, "client");
  if (problem) throw new FlagError(`--cert ${path}: the certificate cannot be a client certificate: ${problem}`);
}

/** Throws when `pem` cannot be the listener's certificate. */
export function checkListenerCert(pem: Buffer, path: string): void {
  let problem: string | undefined;
  try {
    problem = usageProblem(pem, "server");
  } catch (err) {
    throw new FlagError(`--cert-file ${path}: not a PEM certificate: ${(err as Error).message}`);
  }
  if (problem) throw new FlagError(`--cert-file ${path}: the certificate cannot be a server certificate: ${problem}`);
}

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const ANY_EXTENDED_KEY_USAGE = "2.5.29.37.0";
const USAGE_NAMES: Record<string, string> = {
  [SERVER_AUTH]: "serverAuth", [CLIENT_AUTH]: "clientAuth", "1.3.6.1.5.5.7.3.3": "codeSigning",
  "1.3.6.1.5.5.7.3.4": "emailProtection", "1.3.6.1.5.5.7.3.8": "timeStamping", "1.3.6.1.5.5.7.3.9": "OCSPSigning",
};

/**
 * Why the certificate cannot serve as a TLS `role` certificate, or undefined. Its extended key usage is
 * what peers check: Go's TLS (etcd, etcdctl, clientv3, grpc-go) and browsers refuse a server certificate
 * whose extended key usage lacks serverAuth, and etcd refuses a client certificate whose extended key
 * usage lacks clientAuth ("certificate specifies an incompatible key usage"), which would otherwise show
 * only as failed calls. No extension, or anyExtendedKeyUsage, allows both, as in Go.
 */
function usageProblem(pem: Buffer, role: "server" | "client"): string | undefined {
  const usages = extendedKeyUsage(pem);
  if (!usages || usages.length === 0 || usages.includes(ANY_EXTENDED_KEY_USAGE)) return undefined;
  const wanted = role === "server" ? SERVER_AUTH : CLIENT_AUTH;
  if (usages.includes(wanted)) return undefined;
  const has = usages.map((oid) => USAGE_NAMES[oid] ?? oid).join(", ");
  return role === "server"
    ? `its extended key usage (${has}) lacks serverAuth, so clients (etcdctl, clientv3, browsers) would refuse it`
    : `its extended key usage (${has}) lacks clientAuth, so etcd would refuse it`;
}

function commonName(pem: Buffer): string | undefined {
  try {
    const subject = new X509Certificate(pem).subject;
    return /(?:^|\n)CN=([^\n]*)/.exec(subject)?.[1];
  } catch (err) {
    throw new FlagError(`--cert: not a PEM certificate: ${(err as Error).message}`);
  }
}

/**
 * undefined when the listener is cleartext. `warn` gets one line for a flag that is accepted but has no
 * effect.
 */
export async function loadListenerTls(files: ListenerTlsFiles, dataDir: string, warn: (line: string) => void): Promise<ListenerTls | undefined> {
  // As etcd's proxy: only a client certificate is checked against the CRL, and one is asked for only with
  // --trusted-ca-file. etcd's e2e suite passes --client-crl-file to cleartext proxies too.
  if (files.clientCrlFile && !files.trustedCaFile) {
    warn("etcd-edge: --client-crl-file has no effect without --trusted-ca-file and listener TLS (no client certificates are asked for)");
  }
  let cert: Buffer;
  let key: Buffer;
  if (files.certFile && files.keyFile) {
    cert = await read(files.certFile, "--cert-file");
    checkListenerCert(cert, files.certFile);
    key = await read(files.keyFile, "--key-file");
  } else if (files.autoTls) {
    ({ cert, key } = await selfSigned(join(dataDir, "fixtures", "proxy"), files.selfSignedCertValidityYears));
  } else {
    return undefined;
  }
  const tls: ListenerTls = { cert, key, requireClientCert: false, minVersion: files.minVersion };
  if (files.trustedCaFile) {
    tls.ca = await read(files.trustedCaFile, "--trusted-ca-file");
    tls.requireClientCert = true;
  }
  if (files.clientCrlFile && tls.requireClientCert) {
    try {
      tls.crl = ClientCrl.load(files.clientCrlFile);
    } catch (err) {
      throw new FlagError((err as Error).message);
    }
  }
  if (files.cipherSuites) tls.ciphers = files.cipherSuites.split(",").map((s) => s.trim()).join(":");
  if (files.maxVersion) tls.maxVersion = files.maxVersion;
  return tls;
}

/**
 * --auto-tls: reuse <dir>/cert.pem and key.pem when present (as etcd does, so clients that pinned the
 * certificate keep working across restarts), else make a self-signed pair for localhost and 127.0.0.1.
 */
async function selfSigned(dir: string, years: number): Promise<{ cert: Buffer; key: Buffer }> {
  const certPath = join(dir, "cert.pem");
  const keyPath = join(dir, "key.pem");
  try {
    await access(certPath);
    await access(keyPath);
    return { cert: await readFile(certPath), key: await readFile(keyPath) };
  } catch {
    // not there yet: make them below
  }
  const { generate } = await import("selfsigned");
  const notAfter = new Date();
  notAfter.setFullYear(notAfter.getFullYear() + years);
  const pems = await generate([{ name: "commonName", value: "etcd-edge" }], {
    keySize: 2048,
    notAfterDate: notAfter,
    algorithm: "sha256",
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }, { type: 7, ip: "127.0.0.1" }, { type: 7, ip: "::1" }] },
    ],
  });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(certPath, pems.cert, { mode: 0o644 });
  await writeFile(keyPath, pems.private, { mode: 0o600 });
  return { cert: Buffer.from(pems.cert), key: Buffer.from(pems.private) };
}
