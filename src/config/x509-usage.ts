/**
 * The extended key usage of a PEM certificate, read from its DER. node:crypto's X509Certificate.keyUsage
 * gives these OIDs under Node and Bun, but Deno 2.9 answers with the (basic) key usage names there
 * ("DigitalSignature", ...), so the extension is read here, the same on every runtime.
 *
 * Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { ..., extensions [3] SEQUENCE OF Extension }, ... }
 * Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
 * ExtKeyUsageSyntax ::= SEQUENCE OF KeyPurposeId (an OID)
 */

const EXTENDED_KEY_USAGE_OID = "2.5.29.37";

interface Tlv { tag: number; start: number; end: number }

/** The DER elements between `start` and `end`. */
function* elements(der: Uint8Array, start: number, end: number): Generator<Tlv> {
  let at = start;
  while (at < end) {
    if (at + 2 > end) throw new Error("truncated DER");
    const tag = der[at]!;
    let length = der[at + 1]!;
    let body = at + 2;
    if (length & 0x80) {
      const n = length & 0x7f;
      if (n === 0 || n > 4 || body + n > end) throw new Error("bad DER length");
      length = 0;
      for (let i = 0; i < n; i++) length = length * 256 + der[body + i]!;
      body += n;
    }
    if (body + length > end) throw new Error("truncated DER");
    yield { tag, start: body, end: body + length };
    at = body + length;
  }
}

function only(der: Uint8Array, start: number, end: number, tag: number, what: string): Tlv {
  const first = elements(der, start, end).next();
  if (first.done || first.value.tag !== tag) throw new Error(`not a certificate: no ${what}`);
  return first.value;
}

function oid(der: Uint8Array, e: Tlv): string {
  const parts: number[] = [];
  let value = 0;
  for (let i = e.start; i < e.end; i++) {
    value = value * 128 + (der[i]! & 0x7f);
    if (der[i]! & 0x80) continue;
    if (parts.length === 0) parts.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
    else parts.push(value);
    value = 0;
  }
  return parts.join(".");
}

/** The first certificate of a PEM file as DER. */
function firstCertificate(pem: Buffer): Uint8Array {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem.toString("latin1"));
  if (!m) throw new Error("no PEM CERTIFICATE block");
  return Buffer.from(m[1]!.replace(/\s+/g, ""), "base64");
}

/** The extended key usage OIDs of the (first) certificate in `pem`; undefined without the extension. */
export function extendedKeyUsage(pem: Buffer): string[] | undefined {
  const der = firstCertificate(pem);
  const cert = only(der, 0, der.length, 0x30, "Certificate");
  const tbs = only(der, cert.start, cert.end, 0x30, "tbsCertificate");
  for (const field of elements(der, tbs.start, tbs.end)) {
    if (field.tag !== 0xa3) continue;
    const list = only(der, field.start, field.end, 0x30, "extensions");
    for (const ext of elements(der, list.start, list.end)) {
      const parts = [...elements(der, ext.start, ext.end)];
      if (parts[0]?.tag !== 0x06 || oid(der, parts[0]) !== EXTENDED_KEY_USAGE_OID) continue;
      const value = parts[parts.length - 1]!;
      if (value.tag !== 0x04) throw new Error("bad extendedKeyUsage extension");
      const seq = only(der, value.start, value.end, 0x30, "extendedKeyUsage list");
      return [...elements(der, seq.start, seq.end)].filter((e) => e.tag === 0x06).map((e) => oid(der, e));
    }
  }
  return undefined;
}
