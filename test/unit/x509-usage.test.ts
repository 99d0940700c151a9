/**
 * src/config/x509-usage.ts: the extended key usage read from the DER, the same answer node:crypto's
 * keyUsage gives under Node (Deno's keyUsage gives the basic key usage names instead).
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import t from "tap";
import { extendedKeyUsage } from "../../src/config/x509-usage.js";
import { extraLeaf, makeCerts } from "../helpers/certs.js";

const certs = makeCerts(t);

t.test("the same OIDs as node:crypto, none without the extension", async (t) => {
  const cases: [string, string[] | undefined][] = [
    [certs.server.cert, ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]],
    [certs.proxyClient.cert, ["1.3.6.1.5.5.7.3.2"]],
    [extraLeaf(certs, "s", "/CN=s", "serverAuth").cert, ["1.3.6.1.5.5.7.3.1"]],
    [extraLeaf(certs, "any", "/CN=any", "anyExtendedKeyUsage").cert, ["2.5.29.37.0"]],
    [extraLeaf(certs, "none", "/CN=none", undefined).cert, undefined],
    [certs.ca, undefined],
  ];
  for (const [path, want] of cases) {
    const pem = readFileSync(path);
    t.same(extendedKeyUsage(pem), want, path);
    t.same(extendedKeyUsage(pem), new X509Certificate(pem).keyUsage, `${path}: as node:crypto says`);
  }
});

t.test("the first certificate of a chain; not a certificate throws", async (t) => {
  const chain = Buffer.concat([readFileSync(certs.proxyClient.cert), readFileSync(certs.ca)]);
  t.same(extendedKeyUsage(chain), ["1.3.6.1.5.5.7.3.2"]);
  t.throws(() => extendedKeyUsage(Buffer.from("not a certificate")), /no PEM CERTIFICATE block/);
  t.throws(() => extendedKeyUsage(Buffer.from("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")));
});
