/**
 * --client-crl-file, read as etcd reads it (pkg/transport/listener_tls.go checkCRL): PEM or DER, and only
 * the serial numbers of the revoked certificates count. Like etcd, the CRL's signature, issuer and
 * nextUpdate are not checked: OpenSSL's own CRL check (node:tls `crl`) refuses every client once
 * nextUpdate has passed, and wants PEM, which is why the proxy does not hand the file to node:tls.
 */
import { readFileSync, statSync } from "node:fs";

/** A serial number as compared: upper-case hex of its magnitude, no leading zeros (Go's big.Int Bytes()). */
export function serialKey(hex: string): string {
  const magnitude = BigInt(`0x${hex.replace(/^-/, "").replace(/:/g, "") || "0"}`);
  return magnitude.toString(16).toUpperCase();
}

/** The revoked serial numbers of a CRL, PEM or DER. Throws on anything that is not a CRL. */
export function revokedSerials(data: Uint8Array): Set<string> {
  const der = fromPem(data) ?? data;
  const list = tlv(der, 0, "CertificateList", 0x30);
  if (list.end !== der.length) throw new Error("trailing data after the CRL");
  const tbs = tlv(der, list.start, "TBSCertList", 0x30);
  let at = tbs.start;
  if (der[at] === 0x02) at = tlv(der, at, "version").end;
  at = tlv(der, at, "signature", 0x30).end;
  at = tlv(der, at, "issuer", 0x30).end;
  at = time(der, at, "thisUpdate").end;
  if (at < tbs.end && (der[at] === 0x17 || der[at] === 0x18)) at = time(der, at, "nextUpdate").end;
  const serials = new Set<string>();
  // revokedCertificates is absent when nothing is revoked; [0] crlExtensions may follow either way.
  if (at >= tbs.end || der[at] !== 0x30) return serials;
  const revoked = tlv(der, at, "revokedCertificates", 0x30);
  for (let entry = revoked.start; entry < revoked.end; ) {
    const e = tlv(der, entry, "revoked entry", 0x30);
    const serial = tlv(der, e.start, "userCertificate", 0x02);
    serials.add(integerKey(der.subarray(serial.start, serial.end)));
    entry = e.end;
  }
  return serials;
}

function fromPem(data: Uint8Array): Uint8Array | undefined {
  const text = Buffer.from(data).toString("latin1");
  if (!text.includes("-----BEGIN")) return undefined;
  const m = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/.exec(text);
  if (!m) throw new Error("PEM without an X509 CRL block");
  return Buffer.from(m[1]!.replace(/\s+/g, ""), "base64");
}

/** Go's big.Int Bytes() is the magnitude, so a (malformed) negative serial compares by its absolute value. */
function integerKey(content: Uint8Array): string {
  if (content.length === 0) throw new Error("empty serial number");
  let value = BigInt(`0x${Buffer.from(content).toString("hex")}`);
  if (content[0]! & 0x80) value = (1n << BigInt(content.length * 8)) - value;
  return value.toString(16).toUpperCase();
}

interface Tlv { start: number; end: number }

/** One DER element at `at`: where its contents start and where it ends. */
function tlv(der: Uint8Array, at: number, what: string, tag?: number): Tlv {
  if (at + 2 > der.length) throw new Error(`${what}: truncated`);
  if (tag !== undefined && der[at] !== tag) throw new Error(`${what}: expected tag 0x${tag.toString(16)}, got 0x${der[at]!.toString(16)}`);
  let length = der[at + 1]!;
  let start = at + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4 || start + n > der.length) throw new Error(`${what}: bad length`);
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + der[start + i]!;
    start += n;
  }
  if (start + length > der.length) throw new Error(`${what}: truncated`);
  return { start, end: start + length };
}

function time(der: Uint8Array, at: number, what: string): Tlv {
  if (der[at] !== 0x17 && der[at] !== 0x18) throw new Error(`${what}: not a UTCTime or GeneralizedTime`);
  return tlv(der, at, what);
}

/**
 * The CRL file behind --client-crl-file. etcd reads the file again for every connection, so a new CRL
 * counts without a restart; this re-reads it only when its size, mtime or inode changed.
 */
export class ClientCrl {
  private serials: Set<string>;
  private stamp: string;

  private constructor(readonly path: string, serials: Set<string>, stamp: string) {
    this.serials = serials;
    this.stamp = stamp;
  }

  /** Throws with the path and the reason when the file cannot be read or is not a CRL. */
  static load(path: string): ClientCrl {
    const stamp = stampOf(path);
    return new ClientCrl(path, parseFile(path), stamp);
  }

  get size(): number {
    return this.serials.size;
  }

  /**
   * The first of `serials` (hex, as node:tls gives them) that the CRL lists, or undefined. Throws when a
   * changed file cannot be read: etcd then refuses the connection, and so does the caller.
   */
  revoked(serials: Iterable<string>): string | undefined {
    const stamp = stampOf(this.path);
    if (stamp !== this.stamp) {
      this.serials = parseFile(this.path);
      this.stamp = stamp;
    }
    for (const s of serials) if (this.serials.has(serialKey(s))) return s;
    return undefined;
  }
}

function stampOf(path: string): string {
  try {
    const st = statSync(path);
    return `${st.size}:${st.mtimeMs}:${st.ino}`;
  } catch (err) {
    throw new Error(`--client-crl-file: cannot read ${path}: ${(err as Error).message}`);
  }
}

function parseFile(path: string): Set<string> {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    throw new Error(`--client-crl-file: cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    return revokedSerials(data);
  } catch (err) {
    throw new Error(`--client-crl-file: ${path} is not a CRL (PEM or DER): ${(err as Error).message}`);
  }
}
