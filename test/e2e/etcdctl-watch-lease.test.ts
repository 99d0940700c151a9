/**
 * etcdctl's watch and lease commands through the proxy give what they give against etcd itself. Watches run
 * as long-lived etcdctl children, one against etcd and one against the proxy, fed by the same writes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import t from "tap";
import { startEtcd, type Etcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { waitFor } from "../helpers/ports.js";
import { startEdge } from "../helpers/proxy.js";
import { etcdWatchers, settledEtcdWatchers } from "../helpers/watch-session.js";

const etcd = await startEtcd(t);
const edge = await startEdge(t, [`--endpoints=${etcd.endpoint}`]);

/** A long-running etcdctl (watch, keep-alive): its output so far, and a way to end it. */
interface Running {
  out(): string;
  stop(): Promise<void>;
}

function run(endpoint: string, args: string[]): Running {
  const proc: ChildProcess = spawn("etcdctl", [`--endpoints=${endpoint}`, ...args], {
    env: { ...process.env, ETCDCTL_API: "3" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  proc.stdout!.on("data", (d: Buffer) => { out += d.toString(); });
  proc.stderr!.on("data", (d: Buffer) => { err += d.toString(); });
  let exited = false;
  proc.on("exit", () => { exited = true; });
  const stop = async () => {
    if (exited) return;
    proc.kill("SIGKILL");
    await new Promise((r) => proc.once("exit", r));
  };
  t.teardown(stop);
  return { out: () => out + (err ? `\n[stderr] ${err}` : ""), stop };
}

async function revision(): Promise<number> {
  const r = await etcdctl(etcd.endpoint, ["get", "nothing", "-w", "json"]);
  return Number((JSON.parse(r.stdout) as { header: { revision: number } }).header.revision);
}

/**
 * Starts the same `etcdctl watch` against etcd and the proxy, waits until etcd holds both watchers, runs
 * `writes`, then waits for the last event (`done` in both outputs) and returns both outputs.
 */
async function watchBoth(args: string[], writes: () => Promise<void>, done: string): Promise<{ direct: string; proxied: string }> {
  const before = await settledEtcdWatchers(etcd.url);
  const direct = run(etcd.endpoint, ["watch", ...args]);
  const proxied = run(edge.addr, ["watch", ...args]);
  await waitFor("both watches registered on etcd", async () => (await etcdWatchers(etcd.url)) >= before + 2);
  await writes();
  await waitFor(`"${done}" in both watch outputs`, () => direct.out().includes(done) && proxied.out().includes(done));
  await Promise.all([direct.stop(), proxied.stop()]);
  return { direct: direct.out(), proxied: proxied.out() };
}

/** A write through the proxy that must succeed (a failure throws, failing the test that made it). */
async function must(args: string[]): Promise<string> {
  const r = await etcdctl(edge.addr, args);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}
const put = (k: string, v: string) => must(["put", k, v]);
const del = (...args: string[]) => must(["del", ...args]);

t.test("watch --prefix sees puts and deletes as on etcd", async (t) => {
  const { direct, proxied } = await watchBoth(["--prefix", "w1/"], async () => {
    await put("w1/a", "1");
    await put("other", "not watched");
    await put("w1/b", "2");
    await del("w1/a");
    await put("w1/end", "x");
  }, "w1/end");
  t.equal(proxied, direct);
  t.equal(proxied, "PUT\nw1/a\n1\nPUT\nw1/b\n2\nDELETE\nw1/a\n\nPUT\nw1/end\nx\n", "the events, in order, nothing else");
});

t.test("watch --rev replays history as on etcd", async (t) => {
  const from = (await revision()) + 1;
  await put("w2/k", "one");
  await put("w2/k", "two");
  await del("w2/k");
  await put("w2/k", "three");
  // No registration wait needed: --rev makes etcd replay everything from `from`, whenever the watch starts.
  const direct = run(etcd.endpoint, ["watch", `--rev=${from}`, "w2/k"]);
  const proxied = run(edge.addr, ["watch", `--rev=${from}`, "w2/k"]);
  await waitFor("the replay in both outputs", () => direct.out().includes("three") && proxied.out().includes("three"));
  await Promise.all([direct.stop(), proxied.stop()]);
  t.equal(proxied.out(), direct.out());
  t.equal(proxied.out(), "PUT\nw2/k\none\nPUT\nw2/k\ntwo\nDELETE\nw2/k\n\nPUT\nw2/k\nthree\n");
});

t.test("watch --prev-kv shows the previous value as on etcd", async (t) => {
  await put("w3/a", "old");
  const { direct, proxied } = await watchBoth(["--prefix", "--prev-kv", "w3/"], async () => {
    await put("w3/a", "new");
    await del("w3/a");
    await put("w3/end", "x");
  }, "w3/end");
  t.equal(proxied, direct);
  t.match(proxied, /^PUT\nw3\/a\nold\nw3\/a\nnew\nDELETE\nw3\/a\nnew\nw3\/a\n\n/, "prev_kv before each event's kv");
});

t.test("watch -w json with --rev matches etcd byte for byte", async (t) => {
  const from = (await revision()) + 1;
  await put("w4/a", "1");
  await del("w4/a");
  const direct = run(etcd.endpoint, ["watch", "-w", "json", `--rev=${from}`, "--prev-kv", "w4/a"]);
  const proxied = run(edge.addr, ["watch", "-w", "json", `--rev=${from}`, "--prev-kv", "w4/a"]);
  // The replay comes as one response (one JSON line); the DELETE event is `"type":1`.
  const deleted = (s: string) => s.includes('"type":1');
  await waitFor("the json events", () => deleted(direct.out()) && deleted(proxied.out()));
  await Promise.all([direct.stop(), proxied.stop()]);
  t.equal(proxied.out(), direct.out());
});

/** etcdctl's error lines, without its JSON retry logs (they name the endpoint and a random client id). */
const errorLines = (stderr: string) => stderr.split("\n").filter((l) => !l.startsWith("{")).join("\n");

/** A lease id in etcdctl's output (hex) → a fixed word, so outputs for different leases compare. */
const anyId = (s: string) => s.replace(/\b[0-9a-f]{16}\b/g, "<id>");

async function grant(ttl: number): Promise<string> {
  const out = await must(["lease", "grant", String(ttl)]);
  const m = /^lease ([0-9a-f]+) granted with TTL\((\d+)s\)$/.exec(out.trim());
  if (!m) throw new Error(`unexpected lease grant output: ${out}`);
  return m[1]!;
}

t.test("lease grant answers as etcd does", async (t) => {
  const direct = await etcdctl(etcd.endpoint, ["lease", "grant", "60"]);
  const proxied = await etcdctl(edge.addr, ["lease", "grant", "60"]);
  t.equal(proxied.code, 0, proxied.stderr);
  t.equal(anyId(proxied.stdout), anyId(direct.stdout));
  t.equal(anyId(proxied.stdout).trim(), "lease <id> granted with TTL(60s)");
  const id = /lease ([0-9a-f]+)/.exec(proxied.stdout)![1]!;
  const seen = await etcdctl(etcd.endpoint, ["lease", "timetolive", id]);
  t.match(seen.stdout, /granted with TTL\(60s\)/, "the lease exists on etcd");
});

t.test("lease keep-alive --once, and a streaming keep-alive", async (t) => {
  const id = await grant(60);
  const once = await etcdctl(edge.addr, ["lease", "keep-alive", "--once", id]);
  const onceDirect = await etcdctl(etcd.endpoint, ["lease", "keep-alive", "--once", id]);
  t.equal(once.code, 0, once.stderr);
  t.equal(once.stdout, onceDirect.stdout);
  t.equal(once.stdout.trim(), `lease ${id} keepalived with TTL(60)`);

  // clientv3 sends a keep-alive every TTL/3: with TTL 3 that is one a second, so three replies take ~2 s.
  const short = await grant(3);
  const stream = run(edge.addr, ["lease", "keep-alive", short]);
  const replies = () => stream.out().split("\n").filter((l) => l === `lease ${short} keepalived with TTL(3)`).length;
  await waitFor("three keep-alive replies", () => replies() >= 3);
  await stream.stop();
  t.notMatch(stream.out(), /expired or been revoked|stderr/, stream.out());
  const ttl = await etcdctl(etcd.endpoint, ["lease", "timetolive", short]);
  t.match(ttl.stdout, /granted with TTL\(3s\)/, "the kept-alive lease is still alive on etcd");

  const gone = await etcdctl(edge.addr, ["lease", "keep-alive", "--once", "1234abcd"]);
  const goneDirect = await etcdctl(etcd.endpoint, ["lease", "keep-alive", "--once", "1234abcd"]);
  t.equal(gone.code, goneDirect.code, "keep-alive of an unknown lease: same exit code");
  t.equal(errorLines(gone.stderr), errorLines(goneDirect.stderr), "and the same error");
});

t.test("lease timetolive --keys, list and revoke match etcd", async (t) => {
  const id = await grant(120);
  for (const k of ["l/a", "l/b"]) await must(["put", k, "v", `--lease=${id}`]);
  // `remaining` ticks down between the two calls; everything else must be the same.
  // etcd keeps a lease's keys in a map, so their order varies from call to call: compare them sorted.
  const remaining = (s: string) => s.replace(/remaining\(\d+s\)/, "remaining(<n>s)")
    .replace(/attached keys\(\[([^\]]*)\]\)/, (_, keys: string) => `attached keys([${keys.split(" ").sort().join(" ")}])`);
  const ttl = await etcdctl(edge.addr, ["lease", "timetolive", "--keys", id]);
  const ttlDirect = await etcdctl(etcd.endpoint, ["lease", "timetolive", "--keys", id]);
  t.equal(remaining(ttl.stdout), remaining(ttlDirect.stdout));
  t.equal(remaining(ttl.stdout).trim(), `lease ${id} granted with TTL(120s), remaining(<n>s), attached keys([l/a l/b])`);

  // etcd lists leases from a map: the order is not stable, so compare sorted lines.
  const sorted = (s: string) => s.trim().split("\n").sort().join("\n");
  const list = await etcdctl(edge.addr, ["lease", "list"]);
  const listDirect = await etcdctl(etcd.endpoint, ["lease", "list"]);
  t.equal(list.code, 0, list.stderr);
  t.equal(sorted(list.stdout), sorted(listDirect.stdout));
  t.ok(list.stdout.split("\n").includes(id), "the new lease is listed");

  const revoke = await etcdctl(edge.addr, ["lease", "revoke", id]);
  t.equal(revoke.stdout.trim(), `lease ${id} revoked`);
  t.equal((await etcdctl(etcd.endpoint, ["get", "l/", "--prefix", "--keys-only"])).stdout, "", "revoking deleted the attached keys");
  const again = await etcdctl(edge.addr, ["lease", "revoke", id]);
  const againDirect = await etcdctl(etcd.endpoint, ["lease", "revoke", id]);
  t.equal(again.code, againDirect.code);
  t.equal(errorLines(again.stderr), errorLines(againDirect.stderr));
  t.match(again.stderr, /etcdserver: requested lease not found/);
  const after = await etcdctl(edge.addr, ["lease", "timetolive", id]);
  t.equal(after.stdout, (await etcdctl(etcd.endpoint, ["lease", "timetolive", id])).stdout);
  t.equal(after.stdout.trim(), `lease ${id} already expired`);
});
