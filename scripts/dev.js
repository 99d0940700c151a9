#!/usr/bin/env node
// `npm run dev`: a throwaway etcd from PATH on free loopback ports, then etcd-edge in front of it (from
// src/ through tsx, so edits need no build). Ctrl-C stops both and removes etcd's data dir.
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

const stop = () => {
  proxy.kill("SIGTERM");
  etcd.kill("SIGTERM");
  setTimeout(() => { rmSync(dataDir, { recursive: true, force: true }); process.exit(0); }, 300);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
etcd.on("exit", (code) => { console.error(`etcd exited (${code})`); stop(); });
proxy.on("exit", (code) => { console.error(`etcd-edge exited (${code})`); stop(); });

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
