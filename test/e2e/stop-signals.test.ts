/**
 * A supervisor signals the PID it started, and everything under it stops: `npm run dev` (etcd and the proxy
 * gone, etcd's data dir removed), `npm start` and `npx etcd-edge start` (the proxy drains and exits). npm
 * passes SIGTERM to the `sh -c` it runs a script in, and dash dies of it without passing it on: package.json
 * runs its scripts with `exec`, and a proxy started by npx notices that its parent is gone (runtime.ts
 * onShutdown). Needs dist/ for the bin (npm test builds it first; alone: `npm run build` before).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import t, { type Test } from "tap";
import { startEtcd } from "../helpers/etcd.js";
import { freePort, portOpen, waitFor } from "../helpers/ports.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
if (!existsSync(join(ROOT, "dist/src/main.js"))) execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: "inherit" });

/** Every process under `pid`, from /proc (children, grandchildren, ...). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "latin1");
    } catch {
      continue; // gone meanwhile
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

/** Running: present and not a zombie (an orphan's zombie may wait for a reaper that never comes). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

const commandOf = (pid: number) => { try { return readFileSync(`/proc/${pid}/cmdline`, "latin1").replace(/\0/g, " ").trim(); } catch { return "?"; } };

interface Started { proc: ChildProcess; output(): string; exit: Promise<string> }

function start(t: { teardown(fn: () => unknown): void }, cmd: string, args: string[], cwd: string): Started {
  const proc = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => { out += d.toString(); });
  proc.stderr!.on("data", (d: Buffer) => { out += d.toString(); });
  const exit = new Promise<string>((resolve) => proc.once("exit", (code, signal) => resolve(code === null ? String(signal) : `exit ${code}`)));
  // Whatever the test found, nothing it started outlives it.
  t.teardown(() => {
    for (const pid of [...descendants(proc.pid!), proc.pid!]) if (running(pid)) process.kill(pid, "SIGKILL");
  });
  return { proc, output: () => out, exit };
}

/**
 * SIGTERM to the started PID only; it ends as `ends` says ("exit 0", or "SIGTERM" for npx, which re-raises
 * the signal its child died of), and everything that was under it must be gone within `ms`.
 */
async function stopsEverything(t: Test, s: Started, ms: number, ends = "exit 0"): Promise<void> {
  const tree = descendants(s.proc.pid!);
  const names = tree.map((pid) => `${pid} ${commandOf(pid)}`);
  s.proc.kill("SIGTERM");
  t.equal(await s.exit, ends, `the signalled process ends: ${ends} (output: ${s.output()})`);
  await waitFor(`every process under it to end: ${names.join("; ")}`, () => tree.every((pid) => !running(pid)), ms);
  t.ok(true, `all ${tree.length} processes under it ended: ${names.join("; ")}`);
}

t.test("npm run dev: SIGTERM to npm's PID stops etcd and the proxy, and removes etcd's data", async (t) => {
  const dev = start(t, "npm", ["run", "dev", "--", "--debug=false"], ROOT);
  await waitFor(`npm run dev to be ready (output: ${dev.output()})`, () => /listening on http:\/\/127\.0\.0\.1:(\d+)/.test(dev.output()) && dev.output().includes("removed on exit"), 60_000);
  const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(dev.output())![1]);
  const dataDir = /data in (\S+), removed on exit/.exec(dev.output())![1]!;
  const tree = descendants(dev.proc.pid!).map(commandOf);
  t.ok(tree.some((c) => c.startsWith("etcd ")), `etcd runs under npm (${tree.join("; ")})`);
  t.ok(tree.some((c) => c.includes("src/main.ts start")), "and the proxy");
  await stopsEverything(t, dev, 10_000);
  t.equal(await portOpen(port), false, "the proxy's port is closed");
  t.equal(existsSync(dataDir), false, "etcd's data dir is removed");
  t.match(dev.output(), "SIGTERM, shutting down", "the proxy drained (its own shutdown path)");
});

t.test("npm start and npx etcd-edge start: SIGTERM to npm's or npx's PID stops the proxy", async (t) => {
  const etcd = await startEtcd(t);
  // npx runs a package's bin from the project that depends on it: a throwaway project with etcd-edge
  // installed by a symlink, as `npm install etcd-edge` would leave it.
  const project = mkdtempSync(join(tmpdir(), "etcd-edge-npx-"));
  t.teardown(() => rmSync(project, { recursive: true, force: true }));
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "uses-etcd-edge", private: true }));
  mkdirSync(join(project, "node_modules/.bin"), { recursive: true });
  symlinkSync(ROOT, join(project, "node_modules/etcd-edge"));
  symlinkSync("../etcd-edge/bin/etcd-edge.js", join(project, "node_modules/.bin/etcd-edge"));
  // npm start execs the bin, so npm's SIGTERM reaches it and npm exits with its status; under npx the sh
  // in between dies of the signal, npx re-raises it on itself, and the proxy sees its parent go.
  const ways: [string, string, string[], string, string][] = [
    ["npm start", "npm", ["start", "--", "start"], ROOT, "exit 0"],
    ["npx etcd-edge start", "npx", ["--no", "etcd-edge", "start"], project, "SIGTERM"],
  ];
  for (const [name, cmd, args, cwd, ends] of ways) {
    const port = await freePort();
    const s = start(t, cmd, [...args, `--endpoints=${etcd.endpoint}`, `--listen-addr=127.0.0.1:${port}`], cwd);
    await waitFor(`${name} to listen (output: ${s.output()})`, () => s.output().includes("listening on"), 30_000);
    // The proxy may print its shutdown line after npx (already gone) stopped reading: check the port instead.
    await stopsEverything(t, s, 5_000, ends);
    t.equal(await portOpen(port), false, `${name}: the port is closed`);
  }
});
