/** etcdctl's KV commands through the proxy give what they give against etcd itself. */
import t from "tap";
import { startEtcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { startEdge } from "../helpers/proxy.js";

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);
const both = { etcd: etcd.endpoint, edge: edge.addr };

/** Runs the same etcdctl command against etcd and the proxy; exit code and output must match. */
async function same(args: string[], expectedCode = 0): Promise<string> {
  const direct = await etcdctl(both.etcd, args);
  // Guards against a vacuous pass (both sides failing the same way on a bad command line).
  t.equal(direct.code, expectedCode, `etcd itself exits ${expectedCode} on etcdctl ${args.join(" ")}`);
  const proxied = await etcdctl(both.edge, args);
  t.equal(proxied.code, direct.code, `exit code of etcdctl ${args.join(" ")}`);
  t.equal(proxied.stdout, direct.stdout, `stdout of etcdctl ${args.join(" ")}`);
  t.equal(errorLines(proxied.stderr), errorLines(direct.stderr), `stderr of etcdctl ${args.join(" ")}`);
  return proxied.stdout;
}

/** etcdctl's error lines, without its JSON retry logs (they name the endpoint and a random client id). */
const errorLines = (stderr: string) => stderr.split("\n").filter((l) => !l.startsWith("{")).join("\n");

t.test("put and get through the proxy", async (t) => {
  const put = await etcdctl(edge.addr, ["put", "k1", "v1"]);
  t.equal(put.stdout.trim(), "OK");
  for (const [k, v] of [["k2", "v2"], ["k3", "v3"], ["p/a", "1"], ["p/b", "2"], ["p/c", "3"]]) {
    t.equal((await etcdctl(edge.addr, ["put", k!, v!])).code, 0);
  }
  t.equal((await etcdctl(edge.addr, ["get", "k1", "--print-value-only"])).stdout.trim(), "v1");
  t.equal((await etcdctl(etcd.endpoint, ["get", "k1", "--print-value-only"])).stdout.trim(), "v1", "the write reached etcd");
});

t.test("get variants match etcd", async () => {
  await same(["get", "p/", "--prefix"]);
  await same(["get", "p/", "--prefix", "--limit=2"]);
  await same(["get", "p/", "--prefix", "--keys-only"]);
  await same(["get", "p/", "--prefix", "-w", "json"]);
  await same(["get", "k1", "--rev=2"]);
  await same(["get", "k", "--from-key"]);
  await same(["get", "p/", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"]);
  await same(["get", "missing"]);
  await same(["get", "k1", "--consistency=s"]);
});

t.test("del and txn match etcd", async (t) => {
  const del = await etcdctl(edge.addr, ["del", "k3"]);
  t.equal(del.stdout.trim(), "1");
  t.equal((await etcdctl(edge.addr, ["del", "p/", "--prefix", "--prev-kv"])).stdout.trim().split("\n")[0], "3");
  const txn = await etcdctl(edge.addr, ["txn"], { input: 'value("k1") = "v1"\n\nput k1 swapped\n\nput k1 failed\n\n' });
  t.equal(txn.code, 0, txn.stderr);
  t.match(txn.stdout, /SUCCESS/);
  t.equal((await etcdctl(edge.addr, ["get", "k1", "--print-value-only"])).stdout.trim(), "swapped");
  const txn2 = await etcdctl(edge.addr, ["txn"], { input: 'value("k1") = "v1"\n\nput k1 nope\n\nput k1 else\n\n' });
  t.match(txn2.stdout, /FAILURE/);
  t.equal((await etcdctl(edge.addr, ["get", "k1", "--print-value-only"])).stdout.trim(), "else");
});

t.test("errors keep etcd's code and message", async () => {
  // A revision from the future: OutOfRange with etcd's text, exactly as etcdctl prints it against etcd.
  await same(["get", "k1", "--rev=99999"], 1);
  await same(["lease", "revoke", "1234abcd"], 1);
  await same(["lease", "timetolive", "1234abcd"], 0);
});
