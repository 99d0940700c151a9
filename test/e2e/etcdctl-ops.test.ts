/**
 * etcdctl's cluster and maintenance commands through the proxy: member list (etcd's members with the proxy's
 * address as client URL, forwarded as is with --advertise-client-url=''), endpoint status, compaction,
 * defrag, snapshot save, and auth.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { startEtcd } from "../helpers/etcd.js";
import { etcdctl, type CtlResult } from "../helpers/etcdctl.js";
import { startEdge } from "../helpers/proxy.js";

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);

/** etcdctl's error lines, without its JSON retry logs (they name the endpoint and a random client id). */
const errorLines = (stderr: string) => stderr.split("\n").filter((l) => !l.startsWith("{")).join("\n");

/** The endpoint etcdctl names in its output differs between the two runs: make it one word. */
const anyEndpoint = (s: string, ...endpoints: string[]) => endpoints.reduce((acc, e) => acc.split(e).join("<endpoint>"), s);

async function must(endpoint: string, args: string[], o: { input?: string } = {}): Promise<string> {
  const r = await etcdctl(endpoint, args, o);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/** A subtest's `t` (the last overload of t.test takes only the callback). */
type Sub = Parameters<Parameters<typeof t.test>[0]>[0];

/** Same exit code and same error text (retry logs aside) from etcd and through the proxy. */
function sameFailure(t: Sub, proxied: CtlResult, direct: CtlResult, what: string): void {
  t.not(direct.code, 0, `${what} fails against etcd`);
  t.equal(proxied.code, direct.code, `${what}: exit code`);
  t.equal(errorLines(proxied.stderr), errorLines(direct.stderr), `${what}: error text`);
}

t.test("member list: etcd's members, with the proxy's --advertise-client-url as their client URL", async (t) => {
  // etcd's answer with its client URL swapped for the proxy's: the only difference, in every format.
  const asProxy = (direct: string, advertised: string) => direct.split(etcd.url).join(advertised);
  for (const format of ["simple", "json"]) {
    const proxied = await must(edge.addr, ["member", "list", "-w", format]);
    const direct = await must(etcd.endpoint, ["member", "list", "-w", format]);
    t.equal(proxied, asProxy(direct, "127.0.0.1:23790"), `-w ${format}: IDs, names, peer URLs, learner flags and header as etcd's; grpc-proxy's default --advertise-client-url`);
  }
  const res = JSON.parse(await must(edge.addr, ["member", "list", "-w", "json"])) as { members: { name: string; clientURLs: string[] }[] };
  t.same(res.members.map((m) => m.clientURLs), [["127.0.0.1:23790"]], "clients that sync endpoints keep dialling the proxy");

  // python-etcd3 finds the leader by looking Status's leader ID up in the member list.
  const leader = /"leader":(\d+)/.exec(await must(edge.addr, ["endpoint", "status", "-w", "json"]))?.[1];
  const ids = [...(await must(edge.addr, ["member", "list", "-w", "json"])).matchAll(/"ID":(\d+)/g)].map((m) => m[1]);
  t.ok(leader && ids.includes(leader), `Status's leader ${leader} is in the member list (${ids.join(", ")})`);

  const custom = await startEdge(t, [`--endpoints=${etcd.endpoint}`, "--advertise-client-url", "http://proxy.example:2379"]);
  const simple = await must(custom.addr, ["member", "list"]);
  t.equal(simple, asProxy(await must(etcd.endpoint, ["member", "list"]), "http://proxy.example:2379"), "the advertised URL, verbatim");
  t.match(simple, /^[0-9a-f]+, started, test, http:\/\/127\.0\.0\.1:\d+, http:\/\/proxy\.example:2379, false\n$/);
});

t.test("member list is forwarded to etcd with --advertise-client-url=''", async (t) => {
  for (const flag of [["--advertise-client-url="], ["--advertise-client-url", ""]]) {
    const forwarding = await startEdge(t, [`--endpoints=${etcd.endpoint}`, ...flag]);
    for (const format of ["simple", "json"]) {
      const proxied = await must(forwarding.addr, ["member", "list", "-w", format]);
      t.equal(proxied, await must(etcd.endpoint, ["member", "list", "-w", format]), `${JSON.stringify(flag)} -w ${format}`);
    }
    await forwarding.stop();
  }
});

t.test("endpoint status -w json matches etcd", async (t) => {
  const proxied = await must(edge.addr, ["endpoint", "status", "-w", "json"]);
  const direct = await must(etcd.endpoint, ["endpoint", "status", "-w", "json"]);
  t.equal(anyEndpoint(proxied, edge.addr), anyEndpoint(direct, etcd.endpoint));
  const [st] = JSON.parse(proxied) as { Endpoint: string; Status: { version: string } }[];
  t.equal(st?.Endpoint, edge.addr);
  t.equal(st?.Status.version, "3.4.23");
});

t.test("compaction, then a read below it fails with etcd's exact error", async (t) => {
  for (let i = 0; i < 5; i++) await must(edge.addr, ["put", "c/k", `v${i}`]);
  const rev = Number((JSON.parse(await must(etcd.endpoint, ["get", "c/k", "-w", "json"])) as { header: { revision: number } }).header.revision);
  t.equal(await must(edge.addr, ["compaction", String(rev - 1)]), `compacted revision ${rev - 1}\n`);
  for (const args of [["get", "c/k", `--rev=${rev - 2}`], ["get", "c/k", "--rev=1"], ["compaction", String(rev - 1)]]) {
    const proxied = await etcdctl(edge.addr, args);
    const direct = await etcdctl(etcd.endpoint, args);
    sameFailure(t, proxied, direct, args.join(" "));
    t.match(proxied.stderr, /etcdserver: mvcc: required revision has been compacted/);
  }
  t.equal(await must(edge.addr, ["get", "c/k", `--rev=${rev - 1}`, "--print-value-only"]), "v3\n", "the compaction revision itself still reads");
  t.equal(await must(edge.addr, ["compaction", "--physical", String(rev)]), `compacted revision ${rev}\n`, "--physical waits for etcd");
});

t.test("defrag through the proxy", async (t) => {
  const proxied = await etcdctl(edge.addr, ["defrag"]);
  const direct = await etcdctl(etcd.endpoint, ["defrag"]);
  t.equal(proxied.code, 0, proxied.stderr);
  t.equal(anyEndpoint(proxied.stdout, edge.addr), anyEndpoint(direct.stdout, etcd.endpoint));
  t.equal(proxied.stdout, `Finished defragmenting etcd member[${edge.addr}]\n`);
});

t.test("snapshot save writes a valid snapshot", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "etcd-edge-snap-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (let i = 0; i < 20; i++) await must(edge.addr, ["put", `snap/${i}`, "x".repeat(1000)]);
  const viaProxy = join(dir, "proxy.db");
  const viaEtcd = join(dir, "etcd.db");
  // etcdctl checks the SHA-256 etcd appends to the stream, so a corrupt or truncated copy fails here.
  t.equal(await must(edge.addr, ["snapshot", "save", viaProxy]), `Snapshot saved at ${viaProxy}\n`);
  await must(etcd.endpoint, ["snapshot", "save", viaEtcd]);
  t.equal(statSync(viaProxy).size, statSync(viaEtcd).size, "same size as a snapshot taken from etcd directly");
  const status = (file: string) => must(etcd.endpoint, ["snapshot", "status", file, "-w", "json"]);
  const [proxied, direct] = [await status(viaProxy), await status(viaEtcd)];
  t.equal(proxied, direct, "same hash, revision, key count and size");
  const parsed = JSON.parse(proxied) as { hash: number; revision: number; totalKey: number; totalSize: number };
  t.ok(parsed.totalKey >= 20, `holds the keys written (${parsed.totalKey})`);
  t.ok(parsed.hash > 0 && parsed.revision > 0);
});

/** A fresh etcd with root (password "pw") and auth enabled, all set up through a proxy in front of it. */
async function authCluster(t: Sub) {
  const authEtcd = await startEtcd(t);
  const authEdge = await startEdge(t, [`--endpoints=${authEtcd.endpoint}`]);
  await must(authEdge.addr, ["put", "secret/a", "s3cret"]);
  await must(authEdge.addr, ["put", "public/a", "hello"]);
  t.equal(await must(authEdge.addr, ["user", "add", "root:pw"]), "User root created\n");
  t.equal(await must(authEdge.addr, ["role", "add", "root"]), "Role root created\n");
  t.equal(await must(authEdge.addr, ["user", "grant-role", "root", "root"]), "Role root is granted to user root\n");
  t.equal(await must(authEdge.addr, ["auth", "enable"]), "Authentication Enabled\n");
  return { etcd: authEtcd, edge: authEdge };
}

t.test("auth: root reads through the proxy, an anonymous client gets etcd's error", async (t) => {
  const c = await authCluster(t);
  for (const creds of [["--user=root:pw"], ["--user=root", "--password=pw"]]) {
    const args = [...creds, "get", "secret/a"];
    const proxied = await etcdctl(c.edge.addr, args);
    t.equal(proxied.code, 0, proxied.stderr);
    t.equal(proxied.stdout, (await etcdctl(c.etcd.endpoint, args)).stdout);
    t.equal(proxied.stdout, "secret/a\ns3cret\n");
  }
  const anonymous = await etcdctl(c.edge.addr, ["get", "secret/a"]);
  sameFailure(t, anonymous, await etcdctl(c.etcd.endpoint, ["get", "secret/a"]), "anonymous get");
  t.match(anonymous.stderr, /etcdserver: user name is empty/);
  const wrong = await etcdctl(c.edge.addr, ["--user=root:nope", "get", "secret/a"]);
  sameFailure(t, wrong, await etcdctl(c.etcd.endpoint, ["--user=root:nope", "get", "secret/a"]), "wrong password");
  t.match(wrong.stderr, /etcdserver: authentication failed, invalid user ID or password/);
});

t.test("auth: a user with a limited role is denied as etcd denies it", async (t) => {
  const c = await authCluster(t);
  const root = ["--user=root:pw"];
  await must(c.edge.addr, [...root, "user", "add", "alice:apw"]);
  await must(c.edge.addr, [...root, "role", "add", "reader"]);
  t.equal(await must(c.edge.addr, [...root, "role", "grant-permission", "reader", "read", "public/", "--prefix=true"]), "Role reader updated\n");
  await must(c.edge.addr, [...root, "user", "grant-role", "alice", "reader"]);
  const alice = ["--user=alice:apw"];
  t.equal(await must(c.edge.addr, [...alice, "get", "public/a", "--print-value-only"]), "hello\n", "alice reads what her role allows");
  for (const args of [["get", "secret/a"], ["put", "public/a", "changed"], ["role", "list"]]) {
    const proxied = await etcdctl(c.edge.addr, [...alice, ...args]);
    sameFailure(t, proxied, await etcdctl(c.etcd.endpoint, [...alice, ...args]), `alice: ${args.join(" ")}`);
    t.match(proxied.stderr, /etcdserver: permission denied/);
  }
  t.equal(await must(c.etcd.endpoint, [...root, "get", "public/a", "--print-value-only"]), "hello\n", "the denied put changed nothing");
});
