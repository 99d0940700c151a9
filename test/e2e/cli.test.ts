/**
 * The `etcd-edge` command line as users meet it: bad flags exit 2 with a clear message before anything
 * listens, help exits 0, and the compiled bin (what `npm ci` leaves, the README's path) proxies etcdctl.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import t from "tap";
import { startEtcd } from "../helpers/etcd.js";
import { etcdctl } from "../helpers/etcdctl.js";
import { freePort, waitFor } from "../helpers/ports.js";
import { runEdge } from "../helpers/proxy.js";
import { FLAGS } from "../../src/config/flags.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

t.test("an unknown flag exits 2 and names the flag", async (t) => {
  for (const flag of ["--no-such-flag", "--no-such-flag=1", "-listen"]) {
    const r = await runEdge(["start", flag]);
    t.equal(r.code, 2, `${flag}: ${r.out}`);
    t.match(r.out, `etcd-edge: unknown flag: ${flag}`);
    t.notMatch(r.out, /listening on|at .*\.ts:\d+/, "no listener started, no stack trace");
  }
});

t.test("a flag a later issue implements exits 2 'not supported yet'", async (t) => {
  // Whichever is still left: the list shrinks as the issues land.
  const later = FLAGS.find((f) => f.status === "later" && f.kind === "string");
  if (!later) return void t.pass("every flag of etcd's proxy is implemented: nothing to refuse");
  const r = await runEdge(["start", `--${later.name}=foo`]);
  t.equal(r.code, 2, r.out);
  t.match(r.out, `etcd-edge: --${later.name} is not supported yet by etcd-edge`);
  t.notMatch(r.out, /listening on/);
});

t.test("other bad command lines exit 2 with a message", async (t) => {
  const cases: [string[], RegExp][] = [
    [["start", "--endpoints"], /flag needs an argument: --endpoints/],
    [["start", "--listen-addr=nope"], /--listen-addr: expected host:port/],
    [["start", "stray"], /unexpected argument: stray/],
    [["stop"], /unknown command "stop"/],
  ];
  for (const [args, message] of cases) {
    const r = await runEdge(args);
    t.equal(r.code, 2, `${args.join(" ")}: ${r.out}`);
    t.match(r.out, message);
  }
});

t.test("start --help exits 0 and lists grpc-proxy's flags", async (t) => {
  const r = await runEdge(["start", "--help"]);
  t.equal(r.code, 0, r.out);
  for (const flag of ["--endpoints", "--listen-addr", "--advertise-client-url", "--cert-file", "--trusted-ca-file", "--cacert"]) t.match(r.out, flag);
  t.match(r.out, /--namespace string\n.*Election and Lock names too\)\n/, "--namespace is supported (no 'not supported yet')");
});

t.test("the compiled bin (node bin/etcd-edge.js) proxies etcdctl put/get", async (t) => {
  if (!existsSync(`${ROOT}dist/src/main.js`)) execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: "inherit" });
  const etcd = await startEtcd(t);
  const port = await freePort();
  const proc = spawn(process.execPath, ["bin/etcd-edge.js", "start", `--endpoints=${etcd.endpoint}`, `--listen-addr=127.0.0.1:${port}`], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout.on("data", (d: Buffer) => { out += d.toString(); });
  proc.stderr.on("data", (d: Buffer) => { out += d.toString(); });
  let exited = false;
  proc.on("exit", () => { exited = true; });
  t.teardown(async () => {
    if (exited) return;
    proc.kill("SIGKILL");
    await new Promise((r) => proc.once("exit", r));
  });
  await waitFor(`the bin to listen (output: ${out})`, () => {
    if (exited) throw new Error(`bin exited: ${out}`);
    return out.includes("listening on");
  }, 30_000);
  t.match(out, `listening on http://127.0.0.1:${port}, etcd at http://${etcd.endpoint}`);
  const edge = `127.0.0.1:${port}`;
  t.equal((await etcdctl(edge, ["put", "readme/key", "hello"])).stdout, "OK\n");
  t.equal((await etcdctl(edge, ["get", "readme/key"])).stdout, "readme/key\nhello\n");
  t.equal((await etcdctl(etcd.endpoint, ["get", "readme/key", "--print-value-only"])).stdout, "hello\n", "the write reached etcd");

  // SIGTERM: the proxy says so and exits 0 (main.ts's shutdown path).
  proc.kill("SIGTERM");
  const code = await new Promise<number | null>((r) => (exited ? r(proc.exitCode) : proc.once("exit", (c) => r(c))));
  t.equal(code, 0, out);
  t.match(out, "SIGTERM, shutting down");
});
