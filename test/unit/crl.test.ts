/**
 * --client-crl-file's reader (src/config/crl.ts): PEM and DER CRLs as openssl writes them, and hand-built
 * DER for the optional fields; serial numbers compared as etcd compares them (the magnitude).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { ClientCrl, revokedSerials, serialKey } from "../../src/config/crl.js";

const FIXTURE = "/usr/share/gocode/src/go.etcd.io/etcd/integration/fixtures/client-nocn.revoke.crl";
const dir = mkdtempSync(join(tmpdir(), "etcd-edge-crl-"));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });

openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key");
openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=crl test CA", "-days", "2", "-out", "ca.pem", "-config", "/dev/null",
  "-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
writeFileSync(join(dir, "ca.cnf"), [
  "[ca]", "default_ca=c", "[c]", `dir=${dir}`, "database=$dir/index.txt", "certificate=$dir/ca.pem", "private_key=$dir/ca.key",
  "crlnumber=$dir/crlnumber", "default_md=sha256", "default_crl_days=2", "",
].join("\n"));

/** A CRL signed by openssl that revokes `serials` (hex); `extra` goes to `openssl ca -gencrl`. */
function opensslCrl(name: string, serials: string[], extra: string[] = []): { pem: Buffer; der: Buffer } {
  // openssl ca's database: one line per certificate; "R" with a revocation date (and reason) is revoked.
  writeFileSync(join(dir, "index.txt"), serials.map((s, i) => `R\t301231000000Z\t240101000000Z${i % 2 ? ",keyCompromise" : ""}\t${s}\tunknown\t/CN=c${i}\n`).join(""));
  writeFileSync(join(dir, "crlnumber"), "01\n");
  openssl("ca", "-config", "ca.cnf", "-gencrl", "-out", `${name}.pem`, ...extra);
  openssl("crl", "-in", `${name}.pem`, "-outform", "DER", "-out", `${name}.der`);
  return { pem: readFileSync(join(dir, `${name}.pem`)), der: readFileSync(join(dir, `${name}.der`)) };
}

t.test("PEM and DER from openssl give the same serials, normalised", async (t) => {
  // 80 needs a leading 00 byte in DER (high bit); 0B... is the etcd fixture's 20-byte style.
  const { pem, der } = opensslCrl("three", ["01", "80", "0B322E55BDF9F3ACF90B6AD0EB98DEA38C1F6DFA"]);
  const want = ["1", "80", "B322E55BDF9F3ACF90B6AD0EB98DEA38C1F6DFA"];
  t.same([...revokedSerials(pem)].sort(), want.sort());
  t.same([...revokedSerials(der)].sort(), want.sort());
});

t.test("a CRL that revokes nothing, and one whose nextUpdate has passed", async (t) => {
  t.same([...revokedSerials(opensslCrl("empty", []).der)], [], "no revokedCertificates field");
  const expired = opensslCrl("expired", ["1000"], ["-crl_lastupdate", "20200101000000Z", "-crl_nextupdate", "20200102000000Z"]);
  t.match(execFileSync("openssl", ["crl", "-in", join(dir, "expired.pem"), "-noout", "-nextupdate"]).toString(), /2020/);
  t.same([...revokedSerials(expired.der)], ["1000"], "read all the same: etcd does not look at nextUpdate");
});

t.test("etcd's own fixture (DER, nextUpdate 2021)", { skip: !existsSync(FIXTURE) && "golang-etcd-server-dev not installed" }, async (t) => {
  t.same([...revokedSerials(readFileSync(FIXTURE))], ["4A3CF9F9DCC21A01B4A0EFAEF7546AAEE8FBD194"]);
});

t.test("hand-built DER: optional fields, long lengths, negative serials", async (t) => {
  const time = tag(0x17, Buffer.from("240101000000Z"));
  const name = seq(seq(tag(0x31, seq(tag(0x06, Buffer.from([0x55, 4, 3])), tag(0x0c, Buffer.from("ca"))))));
  const algo = seq(tag(0x06, Buffer.from([0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, 2])));
  const entry = (serial: number[]) => seq(tag(0x02, Buffer.from(serial)), time);
  const crl = (tbsFields: Buffer[]) => seq(seq(...tbsFields), algo, tag(0x03, Buffer.from([0, 1, 2])));
  // v1: no version, no nextUpdate; a negative serial (0xFF85 = -123) counts as 7B, as Go's Bytes() has it.
  t.same([...revokedSerials(crl([algo, name, time, seq(entry([0xff, 0x85]), entry([0x00, 0xff]))]))], ["7B", "FF"]);
  // 40 entries: the list and the whole CRL need long-form lengths.
  const many = Array.from({ length: 40 }, (_, i) => entry([i + 1]));
  const big = crl([tag(0x02, Buffer.from([1])), algo, name, time, time, seq(...many), tag(0xa0, seq())]);
  t.equal(revokedSerials(big).size, 40);
  // No revoked list, only [0] extensions.
  t.same([...revokedSerials(crl([tag(0x02, Buffer.from([1])), algo, name, time, tag(0xa0, seq())]))], []);
  t.throws(() => revokedSerials(Buffer.concat([big, Buffer.from([0])])), { message: /trailing data/ });
  t.throws(() => revokedSerials(big.subarray(0, 100)), { message: /truncated/ });
  t.throws(() => revokedSerials(Buffer.from("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")), { message: /X509 CRL/ });
  t.throws(() => revokedSerials(Buffer.from("not a crl")));
});

t.test("serials from node:tls compare by magnitude", async (t) => {
  t.equal(serialKey("0B322E55"), "B322E55");
  t.equal(serialKey("00"), "0");
  t.equal(serialKey("ab:cd"), "ABCD");
  t.equal(serialKey("-7b"), "7B");
});

t.test("ClientCrl reads the file again when it changes, as etcd reads it per connection", async (t) => {
  const path = join(dir, "live.crl");
  writeFileSync(path, opensslCrl("a", ["2001"]).der);
  const crl = ClientCrl.load(path);
  t.equal(crl.revoked(["2001"]), "2001");
  t.equal(crl.revoked(["2002", "abcd"]), undefined);
  writeFileSync(path, opensslCrl("b", ["2002"]).pem);
  utimesSync(path, new Date(), new Date(Date.now() + 5000)); // a later mtime even within one clock tick
  t.equal(crl.revoked(["2001"]), undefined, "the old serial is no longer listed");
  t.equal(crl.revoked(["02002"]), "02002", "the new one is");
  writeFileSync(path, "garbage");
  utimesSync(path, new Date(), new Date(Date.now() + 10_000));
  t.throws(() => crl.revoked(["1"]), { message: /is not a CRL/ }, "an unreadable CRL refuses (the caller drops the client)");
  t.throws(() => ClientCrl.load(join(dir, "missing.crl")), { message: /--client-crl-file: cannot read/ });
});

function tag(type: number, content: Buffer): Buffer {
  const n = content.length;
  const len = n < 128 ? Buffer.from([n]) : n < 256 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([type]), len, content]);
}

function seq(...items: Buffer[]): Buffer {
  return tag(0x30, Buffer.concat(items));
}
