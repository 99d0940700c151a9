#!/usr/bin/env node
// `npm run dev`: a throwaway etcd from PATH on free loopback ports, then etcd-edge in front of it (from
// src/ through tsx, so edits need no build). Ctrl-C, or SIGTERM/SIGHUP to this process or to the npm that
// runs it, stops both (the proxy drains first), removes etcd's data dir and exits 0. package.json runs this
// with `exec`: otherwise npm's SIGTERM goes to the `sh -c` between them, which dies of it without passing it
// on (dash, Debian's sh), and this process, etcd and the proxy would keep running.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

if (spawnSync("etcd", ["--version"]).error) {
  console.error("etcd is not on PATH. On Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y etcd-server etcd-client");
  process.exit(1);
}

const freePort = (preferred) => new Promise((resolve) => {
  const srv = createServer();
  srv.once("error", () => resolve(freePort(0)));
  srv.listen(preferred, "127.0.0.1", () => {
    const { port } = srv.address();
    srv.close(() => resolve(port));
  });
});

const [clientPort, peerPort, proxyPort] = [await freePort(0), await freePort(0), await freePort(23790)];
const dataDir = mkdtempSync(join(tmpdir(), "etcd-edge-dev-"));
const etcdUrl = `http://127.0.0.1:${clientPort}`;
const etcd = spawn("etcd", [
  "--name", "dev", "--data-dir", dataDir,
  "--listen-client-urls", etcdUrl, "--advertise-client-urls", etcdUrl,
  "--listen-peer-urls", `http://127.0.0.1:${peerPort}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${peerPort}`,
  "--initial-cluster", `dev=http://127.0.0.1:${peerPort}`, "--log-level", "error", "--logger", "zap",
], { stdio: ["ignore", "ignore", "inherit"] });

const proxy = spawn(process.execPath, ["--import", "tsx", join(root, "src/main.ts"), "start",
  `--endpoints=127.0.0.1:${clientPort}`, `--listen-addr=127.0.0.1:${proxyPort}`, ...process.argv.slice(2)], { stdio: "inherit", cwd: root });

// The proxy's own shutdown takes at most 5 s (src/main.ts SHUTDOWN_GRACE_MS), etcd's well under that; a
// child still running after this is killed, so a stop never hangs.
const STOP_TIMEOUT_MS = 8_000;
const running = new Set([etcd, proxy]);
const exited = (child) => child.exitCode !== null || child.signalCode !== null;
let stopping = false;

/** Stops both children (SIGTERM, then SIGKILL after STOP_TIMEOUT_MS), removes etcd's data, exits. */
const stop = (code) => {
  if (stopping) return;
  stopping = true;
  clearInterval(parentCheck);
  for (const child of running) if (!exited(child)) child.kill("SIGTERM");
  const kill = setTimeout(() => { for (const child of running) if (!exited(child)) child.kill("SIGKILL"); }, STOP_TIMEOUT_MS);
  const finish = () => {
    if ([...running].some((child) => !exited(child))) return;
    clearTimeout(kill);
    rmSync(dataDir, { recursive: true, force: true });
    process.exit(code);
  };
  for (const child of running) child.once("exit", finish);
  finish();
};
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => stop(0));
// One child gone stops the other. A terminal's Ctrl-C reaches all three at once, and a child may exit of it
// before this process hears it: that is a clean stop too.
const onChildExit = (name) => (code, signal) => {
  if (stopping) return;
  console.error(`${name} exited (${code ?? signal})`);
  stop(code === 0 || signal === "SIGINT" || signal === "SIGTERM" ? 0 : 1);
};
etcd.on("exit", onChildExit("etcd"));
proxy.on("exit", onChildExit("etcd-edge"));
// Started by npm without `exec` (or npm itself killed): the parent goes away without a signal reaching us.
const parent = process.ppid;
const parentCheck = setInterval(() => { if (process.ppid !== parent) stop(0); }, 1_000);
parentCheck.unref();

setTimeout(() => {
  console.log(`
  etcd       ${etcdUrl}   (data in ${dataDir}, removed on exit)
  etcd-edge  http://127.0.0.1:${proxyPort}

  try:  ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:${proxyPort} put hello world
        ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:${proxyPort} get hello
        curl --http2-prior-knowledge http://127.0.0.1:${proxyPort}/health
        curl -H 'content-type: application/json' -d '{"key":"aGVsbG8="}' http://127.0.0.1:${proxyPort}/etcdserverpb.KV/Range
  Ctrl-C stops both.
`);
}, 1500);
